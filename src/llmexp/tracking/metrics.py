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


def plotted(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The points of a curve worth drawing: the final validation repeats the last periodic one (same value, at the
    same or the next step) and would draw a flat hook at the end; a second value at a step already drawn is left out."""
    kept: list[tuple[int, float]] = []
    for step, value in points:
        if kept and (step == kept[-1][0] or (step - kept[-1][0] <= 1 and value == kept[-1][1])):
            continue
        kept.append((step, value))
    return kept
