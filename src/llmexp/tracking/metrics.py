"""Read Lightning's metrics.csv into per-metric series."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value), ...]} with empty cells and non-numbers dropped."""
    series: dict[str, list[tuple[int, float]]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                step = int(float(row.get("step") or "nan"))
            except ValueError:
                continue
            for key, raw in row.items():
                if key in ("step", "epoch") or raw in (None, ""):
                    continue
                try:
                    value = float(raw)
                except ValueError:
                    continue
                if math.isfinite(value):
                    series.setdefault(key, []).append((step, value))
    return series
