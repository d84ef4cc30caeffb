"""Find runs on disk and load what comparison needs: overrides, final metrics, metric curves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from llmexp.tracking.metrics import read_metrics_csv
from llmexp.tracking.plots import Series


@dataclass
class Run:
    """One training run as recorded on disk (an llmexp run folder or a W&B offline run)."""

    name: str
    path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    curves: Series = field(default_factory=dict)
    source: str = "llmexp"

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


def load_llmexp_run(path: Path, name: str) -> Run:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = (yaml.safe_load(overrides_file.read_text()) or []) if overrides_file.exists() else []
    final_file = path / "final_metrics.json"
    final = json.loads(final_file.read_text()) if final_file.exists() else {}
    curves = read_metrics_csv(path / "metrics.csv") if (path / "metrics.csv").exists() else {}
    if not final and curves:
        final = {k: v[-1][1] for k, v in curves.items()}
    return Run(name=name, path=path, overrides=parse_overrides(overrides), final=final, curves=curves)


def load_wandb_run(path: Path, name: str) -> Run:
    from llmexp.tracking.wandb_offline import read_offline_run

    offline = read_offline_run(path)
    curves: Series = {}
    for row in offline.history:
        step = int(row.get("trainer/global_step", row.get("_step", 0)))
        for key, value in row.items():
            if (
                not key.startswith("_")
                and key not in ("epoch", "trainer/global_step")
                and isinstance(value, int | float)
            ):
                curves.setdefault(key, []).append((step, float(value)))
    final = {k: float(v) for k, v in offline.summary.items() if isinstance(v, int | float) and not k.startswith("_")}
    return Run(
        name=name, path=path, overrides=parse_overrides(offline.tags), final=final, curves=curves, source="wandb"
    )


def _is_llmexp_run(path: Path) -> bool:
    return (path / "metrics.csv").exists() or (path / "final_metrics.json").exists()


def discover_runs(paths: list[str | Path]) -> list[Run]:
    """Every run under the given folders: llmexp run folders (a multirun folder holds one per job), and W&B offline
    runs that have no llmexp folder around them."""
    runs: list[Run] = []
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder")
        candidates = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
        llmexp_dirs = [p for p in candidates if _is_llmexp_run(p)]
        for path in llmexp_dirs:
            runs.append(load_llmexp_run(path, _name(root, path)))
        for path in candidates:
            is_wandb = path.name.startswith(("offline-run-", "run-")) and any(path.glob("run-*.wandb"))
            if is_wandb and not any(d in path.parents for d in llmexp_dirs):
                runs.append(load_wandb_run(path, _name(root, path)))
    return runs


def _name(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path != root else path.name
