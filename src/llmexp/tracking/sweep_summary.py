"""A multirun's summary: one row per job (its overrides, status and final metrics), best first.

Written as summary.csv and summary.md in the sweep folder by a Hydra callback: after every job (so a sweep that stops
part-way, or whose launcher dies, still leaves a summary of what finished) and once more when the multirun ends.
Each job also leaves job_status.json (ok/failed and the error's first line) in its folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

STATUS_FILE = "job_status.json"
METRICS = ("val/loss", "val/ppl", "val/bpb", "train/loss", "step", "seconds")


@dataclass
class JobRow:
    """One job of a sweep as found on disk."""

    job: str
    status: str  # ok | failed | running (no result yet); Optuna sweeps: pruned | interrupted
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""


def write_job_status(job_dir: Path, status: str, error: str = "") -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / STATUS_FILE).write_text(json.dumps({"status": status, "error": error}))


def _overrides(job_dir: Path) -> dict[str, str]:
    """The job's overrides, without sweep bookkeeping (an Optuna trial's study, storage and number)."""
    file = job_dir / ".hydra" / "overrides.yaml"
    items = (yaml.safe_load(file.read_text()) or []) if file.exists() else []
    pairs = (item.lstrip("+~").partition("=")[::2] for item in items)
    return {k: v for k, v in pairs if not k.startswith(("sweep.", "hydra."))}


def study_states(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """An Optuna sweep's trials.json by job folder name: the study knows which trials were pruned or failed."""
    file = sweep_dir / "trials.json"
    return {str(t["number"]): t for t in json.loads(file.read_text())} if file.exists() else {}


def _apply_study(row: JobRow, trial: dict[str, Any] | None) -> JobRow:
    if trial is None:
        return row
    if trial.get("interrupted"):
        row.status = "interrupted"
    elif trial["state"] in ("pruned", "fail"):
        row.status = "pruned" if trial["state"] == "pruned" else "failed"
        row.error = row.error or (trial.get("error") or "")
    return row


def read_job(job_dir: Path, finished: bool) -> JobRow:
    """`finished`: the launcher has returned, so a job without a result failed (killed, timed out, lost)."""
    metrics_file, status_file = job_dir / "final_metrics.json", job_dir / STATUS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    recorded = json.loads(status_file.read_text()) if status_file.exists() else {}
    status = recorded.get("status") or ("ok" if metrics else "failed" if finished else "running")
    return JobRow(job_dir.name, status, _overrides(job_dir), metrics, recorded.get("error", ""))


def job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def rank_jobs(rows: list[JobRow], metric: str, mode: str = "min") -> list[JobRow]:
    """Best first by `metric`: ok jobs with the metric, then ok jobs without it, then the rest."""

    def key(row: JobRow) -> tuple[int, float]:
        value = row.metrics.get(metric)
        if row.status != "ok":
            return (2, 0.0)
        if value is None or not math.isfinite(value):
            return (1, 0.0)
        return (0, value if mode == "min" else -value)

    return sorted(rows, key=key)


def _table(rows: list[JobRow], metric: str) -> tuple[list[str], list[list[str]]]:
    keys = sorted({k for r in rows for k in r.overrides})
    varying = [k for k in keys if len({r.overrides.get(k, "") for r in rows}) > 1] or keys
    metrics = [metric, *(m for m in METRICS if m != metric)]
    header = ["job", "status", *varying, *metrics, "error"]
    body = [
        [
            r.job,
            r.status,
            *(r.overrides.get(k, "") for k in varying),
            *(f"{r.metrics[m]:.6g}" if m in r.metrics else "" for m in metrics),
            r.error,
        ]
        for r in rows
    ]
    return header, body


def write_summary(sweep_dir: str | Path, metric: str = "val/loss", mode: str = "min", finished: bool = False) -> Path:
    """Write summary.csv and summary.md (best first) in `sweep_dir`; return the csv's path."""
    sweep_dir = Path(sweep_dir)
    states = study_states(sweep_dir)
    rows = [_apply_study(read_job(d, finished), states.get(d.name)) for d in job_dirs(sweep_dir)]
    rows = rank_jobs(rows, metric, mode)
    header, body = _table(rows, metric)
    text = io.StringIO()
    csv.writer(text).writerows([header, *body])
    done = sum(r.status == "ok" for r in rows)
    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{done} of {len(rows)} jobs ok; best first by {metric} ({mode}).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body),
        *best_lines(sweep_dir, rows, metric),
    ]
    with FileLock(str(sweep_dir / ".summary.lock")):
        for name, content in (("summary.csv", text.getvalue()), ("summary.md", "\n".join(lines) + "\n")):
            partial = sweep_dir / f".{name}.{os.getpid()}"
            partial.write_text(content)
            partial.replace(sweep_dir / name)
    return sweep_dir / "summary.csv"


def best_lines(sweep_dir: Path, rows: list[JobRow], metric: str) -> list[str]:
    """The best ok job, its resolved config and the one command that re-runs it (ranked rows, best first)."""
    from llmexp.sweeps.rerun import rerun_command

    best = next((r for r in rows if r.status == "ok" and metric in r.metrics), None)
    if best is None:
        return []
    job_dir = sweep_dir / best.job
    return [
        "",
        f"Best: job {best.job} ({metric}={best.metrics[metric]:.6g}), config {job_dir / 'config.yaml'}",
        "",
        f"Re-run: `{rerun_command(job_dir)}`",
    ]


class SweepSummary(Callback):
    """Hydra callback (conf/hydra/default.yaml): job status after each job, the sweep summary after each job and at
    the end of the multirun. Does nothing for single runs."""

    def __init__(self, metric: str = "val/loss", mode: str = "min"):
        self.metric, self.mode = metric, mode

    @staticmethod
    def _is_multirun(config: DictConfig) -> bool:
        return str(config.hydra.get("mode")) == "RunMode.MULTIRUN"

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not self._is_multirun(config) or _rank() != 0:
            return
        job_dir = Path(config.hydra.runtime.output_dir)
        if job_return.status == JobStatus.COMPLETED:
            write_job_status(job_dir, "ok")
        else:
            write_job_status(job_dir, "failed", describe_error(job_return._return_value))
        write_summary(config.hydra.sweep.dir, self.metric, self.mode)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            path = write_summary(sweep_dir, self.metric, self.mode, finished=True)
            best = [
                line for line in path.with_suffix(".md").read_text().splitlines() if line.startswith(("Best", "Re-run"))
            ]
            print("\n".join([f"Sweep summary: {path} and {path.with_suffix('.md')}", *best]))


def describe_error(error: BaseException) -> str:
    """One line: the root cause (Hydra wraps errors raised while instantiating a target) and its first line."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _rank() -> int:
    """Only one process of a multi-process job writes (SLURM tasks and Lightning's ranks share the job folder)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", os.environ.get("LOCAL_RANK", "0"))))
