"""Loss curves as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from llmexp.tracking.metrics import plotted

Series = dict[str, list[tuple[int, float]]]
DEFAULT_PANELS = {"loss": ["train/loss", "val/loss"], "bits per byte": ["train/bpb", "val/bpb"]}


def plot_curves(
    runs: dict[str, Series], path: str | Path, panels: dict[str, list[str]] | None = None, title: str = ""
) -> Path:
    """One panel per entry of `panels` (title -> metrics), one line per (run, metric); empty panels are left out."""
    panels = panels or DEFAULT_PANELS
    present = {t: ms for t, ms in panels.items() if any(m in s for s in runs.values() for m in ms)}
    if not present:
        raise ValueError(f"none of the metrics {sorted({m for ms in panels.values() for m in ms})} were logged")
    fig, axes = plt.subplots(1, len(present), figsize=(6 * len(present), 4), squeeze=False)
    for ax, (panel, metrics) in zip(axes[0], present.items(), strict=True):
        for run, series in runs.items():
            for metric in metrics:
                points = series.get(metric)
                if not points:
                    continue
                steps, values = zip(*plotted(points), strict=True)
                label = metric if len(runs) == 1 else f"{run} {metric}"
                style = "-o" if metric.startswith("val/") else "-"
                ax.plot(
                    steps, values, style, label=label, markersize=3, alpha=0.6 if metric.startswith("train/") else 1
                )
        ax.set_xlabel("step")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
