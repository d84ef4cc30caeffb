"""metrics.csv that keeps its history across resumes (and so do the plots drawn from it).

Lightning's CSVLogger deletes metrics.csv when a run starts in a folder that has one, so every resume lost the steps
before it. This logger keeps the file, writes every logged row at once (a killed process loses nothing it logged), and
when the resumed run first writes, drops what it is about to log again: the rows after the step it resumed from (the
old process went on past its last checkpoint) and, at that step, rows of the same metrics (a validation redone).
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

_NOT_METRICS = ("step", "epoch")


def _metrics_in(row: dict[str, Any]) -> set[str]:
    return {k for k, v in row.items() if k not in _NOT_METRICS and v not in ("", None)}


class HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing metrics.csv instead of deleting it."""

    def __init__(self, log_dir: str) -> None:
        self._merged = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes an existing metrics.csv here; it is the run's history, so it stays."""

    def save(self) -> None:
        if self.metrics and not self._merged and self._fs.isfile(self.metrics_file_path):
            self._merge_history()
        self._merged = self._merged or bool(self.metrics)
        super().save()

    def _merge_history(self) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
            reader = csv.DictReader(handle)
            rows, header = list(reader), list(reader.fieldnames or [])
        first = min(int(row["step"]) for row in self.metrics)
        logged_again: dict[int, set[str]] = {}
        for row in self.metrics:
            logged_again.setdefault(int(row["step"]), set()).update(_metrics_in(row))

        def kept(row: dict[str, str]) -> bool:
            step = int(float(row["step"]))
            return step < first or (step == first and not _metrics_in(row) & logged_again.get(step, set()))

        self.metrics_keys = header
        with self._fs.open(self.metrics_file_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(row for row in rows if kept(row))


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv survives resumes and kills (every row written when logged)."""

    def __init__(
        self,
        save_dir: str | os.PathLike,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 1,
    ) -> None:
        super().__init__(save_dir, name, version, prefix, flush_logs_every_n_steps)

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(log_dir=os.fspath(self.log_dir))
        return self._experiment
