"""Run a console entry point in this process, as its script would, and keep what it says on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest


def run_command(
    main: Callable[[], object], argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[int, str]:
    """(exit status, stderr) of `main()` with `argv` as sys.argv (argv[0] is the program name)."""
    monkeypatch.setattr(sys, "argv", list(argv))
    capsys.readouterr()
    try:
        result = main()
        code = result if isinstance(result, int) else 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, capsys.readouterr().err
