"""Run a function as a Hydra app, after checking the command line's overrides (one clear line on a mistake)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import hydra
from hydra._internal.utils import get_args_parser
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from llmexp.config import config_dir
from llmexp.config.overrides import in_multirun, validate_overrides
from llmexp.errors import ConfigError, Interrupted, UserError

# Flags after which Hydra does not compose the job config, so there is nothing to validate.
_NO_JOB = ("help", "hydra_help", "info", "shell_completion", "config_dir", "config_path")


def _refuse(program: str, message: str) -> None:
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def check_command_line(config_name: str, argv: list[str], program: str) -> None:
    """Exit with status 2 and one line on stderr when an override is wrong."""
    args = get_args_parser().parse_intermixed_args(argv)
    if args.experimental_rerun:
        _refuse(
            program,
            f"--experimental-rerun {args.experimental_rerun}: refused, it unpickles a file (which can run code); "
            "run the command again with the overrides in the run's .hydra/overrides.yaml",
        )
    if any(getattr(args, flag, None) for flag in _NO_JOB):
        return
    try:
        validate_overrides(config_dir(), args.config_name or config_name, list(args.overrides))
    except ConfigError as err:
        _refuse(program, str(err))


def user_error(err: BaseException) -> UserError | ValueError | OSError | None:
    """The mistake inside a failed `instantiate` (bad data path, a setting a component refused), if it is one:
    Hydra reports it as "Error in call to target" over several lines."""
    cause = err.__cause__
    while isinstance(cause, InstantiationException):
        cause = cause.__cause__
    return cause if isinstance(cause, UserError | ValueError | OSError) else None


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
    try:
        _run_app(program, config_name, task, preflight)
    except Interrupted as stop:  # a signal before any work could be saved
        print(f"{program}: {stop}", file=sys.stderr, flush=True)
        raise SystemExit(128 + stop.signum) from None


def _run_app(program: str, config_name: str, task: Callable[[DictConfig], Any], preflight: bool) -> None:
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
        except (UserError, InstantiationException) as err:
            mistake = err if isinstance(err, UserError) else user_error(err)
            if mistake is None:
                raise
            print(f"{program}: error: {_first_line(mistake)}", file=sys.stderr)
            if in_multirun():
                raise  # one trial's mistake: the sweeper records the trial as failed and goes on
            raise SystemExit(2) from None

    _main()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
