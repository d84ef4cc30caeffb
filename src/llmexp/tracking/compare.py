"""Compare runs: a table of what differs and how each run ended, overlaid curves, a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from llmexp.tracking.plots import plot_curves
from llmexp.tracking.runs import Run

FINAL_METRICS = ("val/loss", "val/bpb", "val/ppl", "step", "perf/tokens_per_sec", "perf/mfu")
BEST_METRICS = ("val/loss",)
COMPARE_PANELS = {"train loss": ["train/loss"], "val loss": ["val/loss"], "val bits per byte": ["val/bpb"]}


def differing_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value is not the same in every run (a key missing from a run counts as different)."""
    keys = sorted({k for run in runs for k in run.overrides})
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def comparison_rows(runs: list[Run], sort_by: str = "val/loss") -> tuple[list[str], list[list[str]]]:
    """(header, rows) with one row per run, best `sort_by` first; runs without it go last."""
    keys = differing_keys(runs)
    metrics = [m for m in FINAL_METRICS if any(m in r.final for r in runs)]
    header = ["run", *keys, *metrics, *(f"best {m}" for m in BEST_METRICS)]

    def order(run: Run) -> float:
        value = run.final.get(sort_by)
        return value if isinstance(value, int | float) and math.isfinite(value) else math.inf

    rows = []
    for run in sorted(runs, key=order):
        cells = [run.name, *(run.overrides.get(k, "") for k in keys)]
        cells += [_fmt(m, run.final.get(m)) for m in metrics]
        cells += [_fmt(m, run.best(m)) for m in BEST_METRICS]
        rows.append(cells)
    return header, rows


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return ""
    if metric == "step":
        return str(int(value))
    if metric == "perf/mfu":
        return f"{value:.1%}"
    if metric == "perf/tokens_per_sec":
        return f"{value:,.0f}"
    return f"{value:.4f}"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def html_report(header: list[str], rows: list[list[str]], png: Path | None, title: str) -> str:
    """One file, no external assets: the table and the curves (embedded PNG)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    image = ""
    if png is not None and png.exists():
        encoded = base64.b64encode(png.read_bytes()).decode()
        image = f'<img alt="curves" src="data:image/png;base64,{encoded}" style="max-width:100%">'
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(rows)} runs, best first.</p><table><tr>{head}</tr>{body}</table>{image}</body></html>"
    )


def compare_runs(runs: list[Run], out_dir: Path, title: str = "llmexp runs") -> dict[str, Path]:
    """Write compare.txt, compare.png and compare.html into out_dir; return their paths."""
    if not runs:
        raise ValueError("no runs found to compare")
    out_dir.mkdir(parents=True, exist_ok=True)
    header, rows = comparison_rows(runs)
    paths = {"table": out_dir / "compare.txt", "png": out_dir / "compare.png", "html": out_dir / "compare.html"}
    paths["table"].write_text(text_table(header, rows) + "\n")
    keys = differing_keys(runs)
    labels = {
        r.name: " ".join([r.name, *(f"{k.rsplit('.', 1)[-1]}={r.overrides.get(k, '-')}" for k in keys)]) for r in runs
    }
    try:
        plot_curves({labels[r.name]: r.curves for r in runs}, paths["png"], panels=COMPARE_PANELS, title=title)
    except ValueError:
        paths.pop("png").unlink(missing_ok=True)
    paths["html"].write_text(html_report(header, rows, paths.get("png"), title))
    return paths
