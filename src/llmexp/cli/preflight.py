"""`llmexp-preflight`: check every trial of a training sweep (same overrides as llmexp-train) without running it."""

import sys

from llmexp.cli.entry_points import ENTRY_POINTS

HELP = """usage: llmexp-preflight [--help] [key=value ...] [key=v1,v2,... ...]

Check every trial of a training sweep before submitting it: each trial's config is composed and validated, its
memory and time per step estimated for the hardware in preflight.device, and (preflight.tiny_step=true) one tiny step
of the first trial run on this CPU. Takes the same overrides as llmexp-train; exits 1 when a trial cannot run.

examples:
  llmexp-preflight optimizer.lr=1e-4,3e-4 model=gpt_small,gpt_medium
  llmexp-preflight hparams_search=optuna preflight.device=h100
  llmexp-train -m optimizer.lr=1e-4,3e-4 --preflight     (the same check, then the sweep)
"""


def main() -> None:
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        print(HELP.rstrip())
        raise SystemExit(0)
    from hydra._internal.utils import get_args_parser

    from llmexp.preflight import run_preflight

    argv = [a for a in sys.argv[1:] if a not in ("-m", "--multirun", "--preflight")]
    args = get_args_parser().parse_intermixed_args(argv)
    report = run_preflight(args.config_name or ENTRY_POINTS["llmexp-train"].config_name, list(args.overrides))
    print(report.text())
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
