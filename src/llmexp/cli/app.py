"""Run a function as a Hydra app, after checking the command line's overrides (one clear line on a mistake)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import hydra
from hydra._internal.utils import get_args_parser
from omegaconf import DictConfig

from llmexp.config import config_dir
from llmexp.config.overrides import in_multirun, validate_overrides
from llmexp.errors import ConfigError, UserError

# Flags after which Hydra does not compose the job config, so there is nothing to validate.
_NO_JOB = ("help", "hydra_help", "info", "shell_completion", "experimental_rerun", "config_dir", "config_path")


def check_command_line(config_name: str, argv: list[str], program: str) -> None:
    """Exit with status 2 and one line on stderr when an override is wrong."""
    args = get_args_parser().parse_intermixed_args(argv)
    if any(getattr(args, flag, None) for flag in _NO_JOB):
        return
    try:
        validate_overrides(config_dir(), args.config_name or config_name, list(args.overrides))
    except ConfigError as err:
        print(f"{program}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def preflight_or_exit(config_name: str, argv: list[str], program: str) -> None:
    """`--preflight`: check every trial of the sweep; exit 1, submitting nothing, when one cannot run."""
    from llmexp.preflight import run_preflight

    args = get_args_parser().parse_intermixed_args(argv)
    report = run_preflight(args.config_name or config_name, list(args.overrides))
    print(report.text(), flush=True)
    if not report.ok:
        print(f"{program}: nothing submitted", file=sys.stderr)
        raise SystemExit(1)


def run_app(config_name: str, task: Callable[[DictConfig], Any], preflight: bool = False) -> None:
    program = sys.argv[0].rsplit("/", 1)[-1]
    if preflight and "--preflight" in sys.argv:
        sys.argv.remove("--preflight")
        check_command_line(config_name, sys.argv[1:], program)
        preflight_or_exit(config_name, sys.argv[1:], program)
    else:
        check_command_line(config_name, sys.argv[1:], program)

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
    def _main(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except UserError as err:
            print(f"{program}: error: {err}", file=sys.stderr)
            if in_multirun():
                raise  # one trial's mistake: the sweeper records the trial as failed and goes on
            raise SystemExit(2) from None

    _main()
