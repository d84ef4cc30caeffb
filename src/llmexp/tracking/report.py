"""compare.html: one page that opens anywhere (plotly.js is inlined, nothing is fetched) to compare runs.

A table of runs (sortable by any column, filtered by any text) showing only the config keys that differ, the best
run highlighted, links to each run's folder, loss curve, samples and config; interactive curves (one colour per run,
shared with the table; the filter hides filtered runs' curves too); the samples of every run.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from llmexp.tracking.compare import Column, columns, comparison_rows, differing_keys, rank_metric, ranked, text_table
from llmexp.tracking.metrics import plotted
from llmexp.tracking.runs import Run

PANELS = {"train loss": "train/loss", "val loss": "val/loss", "val bits per byte": "val/bpb"}
LINKS = {"curve": "loss_curve.png", "samples": "samples.txt", "config": "config.yaml"}
STYLE = Path(__file__).with_name("report.css")
SCRIPT = Path(__file__).with_name("report.js")


def run_labels(runs: list[Run], width: int = 40) -> dict[str, str]:
    """`<run>: lr=0.001 n_layer=2` from the keys that differ, cut to `width` characters (legends stay narrow)."""
    keys = differing_keys(runs)
    labels = {}
    for run in runs:
        label = " ".join([f"{run.name}:", *(f"{k.rsplit('.', 1)[-1]}={run.overrides.get(k, '-')}" for k in keys)])
        labels[run.name] = label if len(label) <= width else label[: width - 1] + "…"
    return labels


def curves_figure(runs: list[Run], colors: dict[str, str], best: str | None) -> go.Figure | None:
    """One panel per metric any run logged, one trace per run and panel; a run's traces share a legend entry."""
    present = [(title, m) for title, m in PANELS.items() if any(r.curves.get(m) for r in runs)]
    if not present:
        return None
    labels = run_labels(runs)
    fig = make_subplots(rows=1, cols=len(present), subplot_titles=[t for t, _ in present], horizontal_spacing=0.06)
    for run in runs:
        shown = False
        for col, (_, metric) in enumerate(present, start=1):
            points = plotted(run.curves.get(metric, []))
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            trace = go.Scatter(
                x=steps,
                y=values,
                name=labels[run.name],
                legendgroup=run.name,
                showlegend=not shown,
                # a curve of one point (a short run) draws nothing as a line alone
                mode="lines+markers" if metric.startswith("val/") or len(steps) < 3 else "lines",
                marker={"size": 4},
                line={"color": colors[run.name], "width": 3 if run.name == best else 1.5},
                hovertemplate=f"{html.escape(labels[run.name])}<br>step %{{x}}<br>{metric} %{{y:.4f}}<extra></extra>",
            )
            fig.add_trace(trace, row=1, col=col)
            shown = True
    fig.update_xaxes(title_text="step")
    fig.update_layout(
        height=460,
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 40, "b": 50},
        legend={"font": {"size": 11}, "itemclick": "toggle", "itemdoubleclick": "toggleothers"},
    )
    return fig


def _link(target: Path, out_dir: Path) -> str:
    return quote(Path(os.path.relpath(target, out_dir)).as_posix())


def _cell(column: Column, run: Run, color: str, out_dir: Path) -> str:
    value = column.value(run)
    if column.kind == "run":
        swatch = f'<span class="swatch" style="background:{color}"></span>'
        name = html.escape(run.name)
        return f'<td data-v="{name}">{swatch}<a href="{_link(run.path, out_dir)}/">{name}</a></td>'
    sort_value = "" if value is None else html.escape(str(value))
    return f'<td data-v="{sort_value}" class="{column.kind}">{html.escape(column.text(run))}</td>'


def table_html(runs: list[Run], colors: dict[str, str], best: str | None, out_dir: Path) -> str:
    cols = columns(runs)
    head = "".join(f'<th class="{c.kind}" title="click to sort">{html.escape(c.name)}</th>' for c in cols)
    rows = []
    for run in runs:
        cells = "".join(_cell(c, run, colors[run.name], out_dir) for c in cols)
        links = " ".join(
            f'<a href="{_link(run.path / name, out_dir)}">{text}</a>'
            for text, name in LINKS.items()
            if (run.path / name).is_file()
        )
        marker = ' class="best"' if run.name == best else ""
        rows.append(f'<tr data-run="{html.escape(run.name)}"{marker}>{cells}<td class="links">{links}</td></tr>')
    return (
        f'<table id="runs"><thead><tr>{head}<th class="links">files</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def samples_html(runs: list[Run]) -> str:
    labels = run_labels(runs, width=120)
    items = [
        f"<details><summary>{html.escape(labels[r.name])}</summary><pre>{html.escape(r.samples)}</pre></details>"
        for r in runs
        if r.samples
    ]
    return "<h2>Samples</h2>" + "".join(items) if items else ""


def render_report(runs: list[Run], out_dir: Path, title: str) -> str:
    """The whole page as one string."""
    metric, reason = rank_metric(runs)
    runs = ranked(runs, metric)
    palette = qualitative.Dark24 + qualitative.Light24
    colors = {r.name: palette[i % len(palette)] for i, r in enumerate(runs)}
    best = runs[0].name if metric in runs[0].final else None
    verdict = f"best: <b>{html.escape(best)}</b> ({metric} {runs[0].final[metric]:.4f})" if best else "no run has it"
    figure = curves_figure(runs, colors, best)
    plot = "" if figure is None else figure.to_html(full_html=False, include_plotlyjs=False, div_id="curves")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE.read_text()}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{len(runs)} runs, ranked by <b>{metric}</b> ({reason}); {verdict}. "
        "Click a column to sort; type to filter (the curves follow).</p>"
        '<input id="filter" type="search" placeholder="filter runs: any text in their row">'
        f'<div class="scroll">{table_html(runs, colors, best, out_dir)}</div>'
        f"{plot}{samples_html(runs)}"
        f"<script>{SCRIPT.read_text()}</script></body></html>"
    )


def compare_runs(runs: list[Run], out_dir: Path, title: str = "llmexp runs") -> dict[str, Path]:
    """Write compare.txt and compare.html (one self-contained page) into out_dir; return their paths."""
    if not runs:
        raise ValueError("no runs found to compare")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table": out_dir / "compare.txt", "html": out_dir / "compare.html"}
    paths["table"].write_text(text_table(*comparison_rows(runs)) + "\n")
    paths["html"].write_text(render_report(runs, out_dir, title), encoding="utf-8")
    return paths
