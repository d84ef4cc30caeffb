"""Run a command as a Hydra app, after checking the command line's overrides (one clear line on a mistake).

The function a command runs is imported only once the command line is known to be good, so `--help`, TAB
completion and refused overrides never pay for importing torch and Lightning."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from omegaconf import DictConfig

from llmexp.cli.entry_points import ENTRY_POINTS, EntryPoint
from llmexp.cli.help import help_text
from llmexp.config import config_dir
from llmexp.errors import ConfigError, Interrupted, UserError

# Flags after which Hydra does not compose the job config, so there is nothing to validate.
_NO_JOB = ("help", "hydra_help", "info", "shell_completion", "config_dir", "config_path")


def _refuse(program: str, message: str) -> None:
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def _arguments(argv: list[str]):
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_intermixed_args(argv)


def check_command_line(config_name: str, argv: list[str], program: str) -> None:
    """Exit with status 2 and one line on stderr when an override is wrong (`--cfg` may leave required keys unset:
    it only prints the config)."""
    from llmexp.config.overrides import validate_overrides

    args = _arguments(argv)
    if args.experimental_rerun:
        _refuse(
            program,
            f"--experimental-rerun {args.experimental_rerun}: refused, it unpickles a file (which can run code); "
            "run the command again with the overrides in the run's .hydra/overrides.yaml",
        )
    if any(getattr(args, flag, None) for flag in _NO_JOB):
        return
    try:
        validate_overrides(config_dir(), args.config_name or config_name, list(args.overrides), require=not args.cfg)
    except ConfigError as err:
        _refuse(program, str(err))


def user_error(err: BaseException) -> UserError | ValueError | OSError | None:
    """The mistake inside a failed `instantiate` (bad data path, a setting a component refused), if it is one:
    Hydra reports it as "Error in call to target" over several lines."""
    from hydra.errors import InstantiationException

    cause = err.__cause__
    while isinstance(cause, InstantiationException):
        cause = cause.__cause__
    return cause if isinstance(cause, UserError | ValueError | OSError) else None


def preflight_or_exit(config_name: str, argv: list[str], program: str) -> None:
    """`--preflight`: check every trial of the sweep; exit 1, submitting nothing, when one cannot run."""
    from llmexp.preflight import run_preflight

    args = _arguments(argv)
    report = run_preflight(args.config_name or config_name, list(args.overrides))
    print(report.text(), flush=True)
    if not report.ok:
        print(f"{program}: nothing submitted", file=sys.stderr)
        raise SystemExit(1)


def target_function(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def run(program: str) -> None:
    """The console entry point of `program` (see llmexp.cli.entry_points)."""
    run_app(ENTRY_POINTS[program])


def _resume(entry: EntryPoint, argv: list[str]) -> list[str]:
    """`resume=<run folder>` (or a checkpoint inside one) becomes the command line that continues that run."""
    from llmexp.config.resume import resume_command_line

    try:
        plan = resume_command_line(argv)
    except ConfigError as err:
        print(f"{entry.program}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    for warning in plan.warnings:
        print(f"{entry.program}: warning: {warning}", file=sys.stderr)
    if plan.run_dir is not None:
        print(f"{entry.program}: continuing the run in {plan.run_dir}", file=sys.stderr)
    return plan.argv


def run_app(entry: EntryPoint) -> None:
    try:
        _run_app(entry)
    except Interrupted as stop:  # a signal before any work could be saved
        print(f"{entry.program}: {stop}", file=sys.stderr, flush=True)
        raise SystemExit(128 + stop.signum) from None


def _run_app(entry: EntryPoint) -> None:
    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        print(help_text(entry))
        raise SystemExit(0)
    if entry.resumable:
        argv = _resume(entry, argv)
        sys.argv[1:] = argv
    check_preflight = entry.preflight and "--preflight" in argv
    if check_preflight:
        sys.argv.remove("--preflight")
    check_command_line(entry.config_name, sys.argv[1:], entry.program)
    from llmexp.config.overrides import open_mapping_overrides

    sys.argv[1:] = open_mapping_overrides(sys.argv[1:])  # eval.files.<task>=<path> as Hydra needs it
    if check_preflight:
        preflight_or_exit(entry.config_name, sys.argv[1:], entry.program)
    _hydra_main(entry)


def _hydra_main(entry: EntryPoint) -> None:
    import hydra
    from hydra.errors import InstantiationException

    from llmexp.config.overrides import in_multirun

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=entry.config_name)
    def _main(cfg: DictConfig) -> Any:
        from llmexp.tracking.quiet import silence_library_noise

        silence_library_noise()
        try:
            return target_function(entry.target)(cfg)
        except (UserError, InstantiationException) as err:
            mistake = err if isinstance(err, UserError) else user_error(err)
            if mistake is None:
                raise
            print(f"{entry.program}: error: {_first_line(mistake)}", file=sys.stderr)
            if in_multirun():
                raise  # one trial's mistake: the sweeper records the trial as failed and goes on
            raise SystemExit(2) from None

    _main()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
