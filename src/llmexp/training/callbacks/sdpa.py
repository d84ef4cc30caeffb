"""Choose which scaled-dot-product-attention kernels may run (flash, memory-efficient, cuDNN, math)."""

from __future__ import annotations

import contextlib

import lightning as L
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


class SDPABackends(L.Callback):
    """Restrict SDPA to the listed kernels for the whole fit/validate/test (torch picks the fastest allowed one).

    `backends: [math]` is the reference implementation; `[flash]` fails loudly where flash cannot run, which is how
    to prove a run really uses it.
    """

    def __init__(self, backends: list[str]):
        unknown = sorted(set(backends) - set(BACKENDS))
        if unknown or not backends:
            raise ValueError(f"callbacks.sdpa.backends: {unknown or backends} not in {sorted(BACKENDS)}")
        self.backends = [BACKENDS[name] for name in backends]
        self._stack = contextlib.ExitStack()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stack.enter_context(sdpa_kernel(self.backends))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stack.close()
