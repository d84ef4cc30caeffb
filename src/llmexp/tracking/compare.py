"""Compare runs: what differs between them, how each ended, best first; written as a text table and an HTML report.

Runs are ranked by validation loss, unless their tokenizers differ: a loss per token then depends on how long the
tokens are (a small vocabulary makes many easy tokens), so they are ranked by bits per byte instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmexp.tracking.runs import Run

FINAL_METRICS = ("val/loss", "val/bpb", "val/ppl", "train/loss", "step", "perf/tokens_per_sec", "perf/mfu")


@dataclass
class Column:
    """One column of the comparison: its header, what kind of value it holds, and how to read it from a run."""

    name: str
    kind: str  # run | config | metric | eval
    value: Callable[[Run], Any]

    def text(self, run: Run) -> str:
        return fmt(self.name, self.value(run))


def differing_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value is not the same in every run (a key missing from a run counts as different)."""
    keys = sorted({k for run in runs for k in run.overrides})
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def rank_metric(runs: list[Run]) -> tuple[str, str]:
    """(metric, the reason in words): val/bpb when the tokenizers differ and bits per byte were measured."""
    if len({r.tokenizer for r in runs}) > 1 and any("val/bpb" in r.final for r in runs):
        return "val/bpb", "bits per byte, because the runs' tokenizers differ (their losses per token do not compare)"
    return "val/loss", "validation loss (all runs share one tokenizer)"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def ranked(runs: list[Run], metric: str) -> list[Run]:
    """Best (lowest) first; runs without the metric last, in their folder order."""

    def key(run: Run) -> float:
        value = _number(run.final.get(metric))
        return math.inf if value is None else value

    return sorted(runs, key=key)


def columns(runs: list[Run]) -> list[Column]:
    """The run, the config keys that differ, the final metrics any run has, best val/loss, the eval scores."""
    cols = [Column("run", "run", lambda r: r.name)]
    cols += [Column(k, "config", lambda r, k=k: r.overrides.get(k, "")) for k in differing_keys(runs)]
    cols += [
        Column(m, "metric", lambda r, m=m: r.final.get(m)) for m in FINAL_METRICS if any(m in r.final for r in runs)
    ]
    if any(r.curves.get("val/loss") for r in runs):
        cols.append(Column("best val/loss", "metric", lambda r: r.best("val/loss")))
    evals = sorted({k for r in runs for k in r.evals})
    return cols + [Column(k, "eval", lambda r, k=k: r.evals.get(k)) for k in evals]


def fmt(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, int | float):
        return str(value)
    if name == "step":
        return str(int(value))
    if name == "perf/mfu":
        return f"{value:.1%}"
    if name == "perf/tokens_per_sec":
        return f"{value:,.0f}"
    return f"{value:.4f}"


def comparison_rows(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) with one row per run, best first."""
    cols = columns(runs)
    order = ranked(runs, rank_metric(runs)[0])
    return [c.name for c in cols], [[c.text(r) for c in cols] for r in order]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])
