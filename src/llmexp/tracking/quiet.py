"""Silence library output that says nothing actionable to an llmexp user, at its source: warnings by message, and
log records of the libraries' own loggers by message. What is left in a run's output is worth reading."""

from __future__ import annotations

import logging
import os
import re
import warnings

_WARNINGS = (
    # Our CSV logger writes into Hydra's run folder on purpose; that folder already holds .hydra/ and the log.
    r"Experiment logs directory .* exists and is not empty",
    r".*isinstance\(treespec, LeafSpec\).*",
    # Lightning's hint about DataLoader workers is wrong for our in-memory token streams.
    r".*does not have many workers which may be a bottleneck.*",
    # Lightning sees `srun` on PATH wherever SLURM is installed; our SLURM runs go through srun or submitit.
    r"The `srun` command is available on your system but is not used",
    # The default W&B settings carry `anonymous`, which new wandb versions ignore.
    r".*anonymous.*has no effect.*",
)
_LOG_RECORDS = {
    "lightning.pytorch.utilities.rank_zero": (r"litlogger", r"Tip: "),
    "lightning.fabric.utilities.rank_zero": (r"litlogger", r"Tip: "),
}


class _DropMatching(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]):
        super().__init__()
        self.pattern = re.compile("|".join(patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def silence_library_noise() -> None:
    """Called by every command before its work (and by the run functions, for callers that skip the CLI)."""
    if "DS_ACCELERATOR" not in os.environ:
        import torch

        if not torch.cuda.is_available():  # transformers imports DeepSpeed, which warns it fell back to the CPU
            os.environ["DS_ACCELERATOR"] = "cpu"
    for pattern in _WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name, patterns in _LOG_RECORDS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMatching) for f in logger.filters):
            logger.addFilter(_DropMatching(patterns))
