"""Errors meant for the person at the command line: the entry points print them as one line, no traceback."""


class UserError(Exception):
    """Something the user can fix: a bad override, a missing file, an impossible combination."""


class ConfigError(UserError, ValueError):
    """A config value or override is wrong."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or not an llmexp checkpoint."""


class DataError(UserError):
    """Input data is missing or unusable as configured (no file matches, no documents survive, a bad dataset)."""


class Interrupted(BaseException):
    """A termination signal arrived while there was nothing to save (before training started): the command stops at
    once with one line and exit status 128 + the signal's number. A BaseException, so no `except Exception` (Hydra's
    instantiate, library code) turns it into something else."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
