"""Silence library warnings that say nothing actionable to an llmexp user."""

from __future__ import annotations

import warnings

_NOISE = (
    # Our CSV logger writes into Hydra's run folder on purpose; that folder already holds .hydra/ and the log.
    r"Experiment logs directory .* exists and is not empty",
    r".*isinstance\(treespec, LeafSpec\).*",
    # Lightning's hint about DataLoader workers is wrong for our in-memory token streams.
    r".*does not have many workers which may be a bottleneck.*",
    r".*litlogger.*",
)


def silence_library_noise() -> None:
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
