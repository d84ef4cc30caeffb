"""`llmexp-compare`: compare runs (run folders, a multirun or sweep folder) in a table and one interactive HTML page."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from llmexp.errors import UserError
from llmexp.tracking.compare import comparison_rows, text_table
from llmexp.tracking.diff import diff_records, format_diff, load_record
from llmexp.tracking.report import compare_runs
from llmexp.tracking.runs import discover_runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmexp-compare", description=__doc__)
    parser.add_argument("paths", nargs="+", help="run folders or folders that contain runs (e.g. a multirun folder)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the report (default: the only path given, else outputs/compare/<time>)",
    )
    parser.add_argument(
        "--diff",
        action="store_true",
        help="with two runs or checkpoints: list every difference in "
        "config, git commit, package versions, data and tokenizer",
    )
    args = parser.parse_args(argv)
    if args.diff:
        return diff_main(args.paths)
    try:
        runs = discover_runs(args.paths)
    except FileNotFoundError as err:
        print(f"llmexp-compare: error: {err}", file=sys.stderr)
        return 2
    if not runs:
        print(
            f"llmexp-compare: error: no runs (folders with metrics.csv or final_metrics.json) under {args.paths}",
            file=sys.stderr,
        )
        return 2
    out = args.out or (
        Path(args.paths[0]) if len(args.paths) == 1 else Path("outputs/compare") / time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    paths = compare_runs(runs, out, title=" ".join(args.paths))
    print(text_table(*comparison_rows(runs)))
    print("\n" + "\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    return 0


def diff_main(paths: list[str]) -> int:
    if len(paths) != 2:
        print("llmexp-compare: error: --diff takes exactly two runs or checkpoints", file=sys.stderr)
        return 2
    try:
        records = [load_record(p) for p in paths]
    except (FileNotFoundError, UserError) as err:
        print(f"llmexp-compare: error: {err}", file=sys.stderr)
        return 2
    print(format_diff(diff_records(*records), (paths[0], paths[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
