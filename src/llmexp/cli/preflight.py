"""`llmexp-preflight`: check every trial of a training sweep (same overrides as llmexp-train) without running it."""

import sys

from hydra._internal.utils import get_args_parser

from llmexp.preflight import run_preflight


def main() -> None:
    argv = [a for a in sys.argv[1:] if a not in ("-m", "--multirun", "--preflight")]
    args = get_args_parser().parse_intermixed_args(argv)
    report = run_preflight(args.config_name or "train", list(args.overrides))
    print(report.text())
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
