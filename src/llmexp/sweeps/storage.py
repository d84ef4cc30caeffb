"""Where an Optuna study lives: a journal file in the sweep folder, or a database.

Optuna's journal file is an append-only log guarded by a symlink lock (atomic on NFS and Lustre), so the sweep and
trials running on other nodes share it through the filesystem, and nothing is lost when the sweep is killed
mid-write: a reader replays the log up to its last complete entry.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

STUDY_FILE = "optuna.journal"


def default_location(sweep_dir: Path) -> str:
    return str(sweep_dir / STUDY_FILE)


def open_storage(location: str) -> BaseStorage:
    """A database URL (`postgresql://...`, `sqlite:///...`) or the path of a journal file."""
    if "://" in location:
        return RDBStorage(location)
    return JournalStorage(JournalFileBackend(location))


def load_study(location: str, study_name: str, **kwargs) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=open_storage(location), **kwargs)
