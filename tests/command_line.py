"""Run a console entry point in this process, as its script would, and keep what it says on stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def _logging_kept() -> Iterator[None]:
    """Hydra configures logging for each run (job_logging: handlers on the root logger, existing loggers disabled);
    put it back as it was, so that the tests after this one see log records as usual."""
    loggers = [
        logging.getLogger(),
        *(x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger)),
    ]
    saved = {x: (x.disabled, x.level, list(x.handlers), x.propagate) for x in loggers}
    try:
        yield
    finally:
        kept = {h for _, _, handlers, _ in saved.values() for h in handlers}
        everyone = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
        for handler in {h for x in everyone if isinstance(x, logging.Logger) for h in x.handlers} - kept:
            handler.close()  # the run's own (its train.log)
        for found in list(logging.root.manager.loggerDict.values()):
            if isinstance(found, logging.Logger) and found not in saved:
                found.disabled, found.handlers = False, []
        for logger, (disabled, level, handlers, propagate) in saved.items():
            logger.disabled, logger.handlers, logger.propagate = disabled, handlers, propagate
            logger.setLevel(level)


def run_command(
    main: Callable[[], object], argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[int, str]:
    """(exit status, stderr) of `main()` with `argv` as sys.argv (argv[0] is the program name)."""
    monkeypatch.setattr(sys, "argv", list(argv))
    capsys.readouterr()
    with _logging_kept():
        try:
            result = main()
            code = result if isinstance(result, int) else 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, capsys.readouterr().err
