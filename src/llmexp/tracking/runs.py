"""Find runs on disk and load what comparison needs: overrides, final metrics, metric curves, eval results, samples.

Everything comes from the run folder (metrics.csv, final_metrics.json, provenance.json, ...), whichever loggers the
run also used: W&B keeps its own copy for its web app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmexp.sweeps.rerun import trial_overrides
from llmexp.tracking.metrics import read_metrics_csv
from llmexp.tracking.plots import Series

EVALS_FILE = "evals.jsonl"  # one line per `llmexp-eval` of this run's checkpoints (evaluation/run.py)


@dataclass
class Run:
    """One training run as recorded in its folder."""

    name: str
    path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    curves: Series = field(default_factory=dict)
    tokenizer: str | None = None  # sha256 of the tokenizer: losses of runs with different ones do not compare
    evals: dict[str, float] = field(default_factory=dict)
    samples: str = ""

    def best(self, metric: str, mode: str = "min") -> float | None:
        points = [v for _, v in self.curves.get(metric, [])]
        if not points:
            return None
        return min(points) if mode == "min" else max(points)


def parse_overrides(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, _, value = item.partition("=")
        pairs[key.lstrip("+~")] = value
    return pairs


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def read_evals(path: Path) -> dict[str, float]:
    """eval/* scores: those of training (final_metrics.json) overlaid by later `llmexp-eval` runs, newest last."""
    scores = {k: v for k, v in (_json(path / "final_metrics.json") or {}).items() if k.startswith("eval/")}
    log = path / EVALS_FILE
    for line in log.read_text().splitlines() if log.is_file() else []:
        scores.update({f"eval/{k}": v for k, v in json.loads(line)["results"].items()})
    return scores


def load_run(path: Path, name: str) -> Run:
    overrides = trial_overrides(path) if (path / ".hydra" / "overrides.yaml").is_file() else []
    curves = read_metrics_csv(path / "metrics.csv") if (path / "metrics.csv").exists() else {}
    # What final_metrics.json leaves out (throughput, say) is the metric's last logged value.
    final = {**{k: v[-1][1] for k, v in curves.items()}, **(_json(path / "final_metrics.json") or {})}
    samples = path / "samples.txt"
    return Run(
        name=name,
        path=path,
        overrides=parse_overrides(overrides),
        final=final,
        curves=curves,
        tokenizer=(_json(path / "provenance.json") or {}).get("tokenizer_sha256"),
        evals=read_evals(path),
        samples=samples.read_text(encoding="utf-8") if samples.is_file() else "",
    )


def _is_run(path: Path) -> bool:
    return (path / "metrics.csv").exists() or (path / "final_metrics.json").exists()


def discover_runs(paths: list[str | Path]) -> list[Run]:
    """Every run under the given folders (a multirun folder holds one per job), in folder order."""
    runs: list[Run] = []
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder")
        candidates = [root, *sorted((p for p in root.rglob("*") if p.is_dir()), key=_natural)]
        runs += [load_run(path, _name(root, path)) for path in candidates if _is_run(path)]
    return runs


def _natural(path: Path) -> list[tuple[int, int, str]]:
    """Folder 10 after folder 9."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def _name(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path != root else path.name
