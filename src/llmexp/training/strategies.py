"""Strategy helpers for configs in conf/strategy/."""

from __future__ import annotations

import torch
from lightning.pytorch.strategies import SingleDeviceStrategy


def single_device(accelerator: str = "auto") -> SingleDeviceStrategy:
    """One process on the first GPU when there is one (and the accelerator allows it), else on the CPU."""
    use_gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    return SingleDeviceStrategy(device=torch.device("cuda", 0) if use_gpu else torch.device("cpu"))
