"""Random-number generator states in every checkpoint, so a resumed run draws the numbers it would have drawn."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn


def capture() -> dict[str, Any]:
    """The Python, NumPy, torch CPU (and CUDA) generator states, as tensors and plain data (`weights_only` loads)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": (version, list(internal), gauss_next),
        "numpy": (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any]) -> None:
    """Set every generator to a state `capture` recorded."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RNGState(L.Callback):
    """Saves the generators in checkpoints and restores them on resume. Every rank is seeded alike, so rank 0's
    state serves all.

    The restore waits for the first training batch: creating the data loader's iterator draws a number, which the
    uninterrupted run drew before the checkpoint was written. Validation during fit leaves the generators as it
    found them, so training draws the same numbers whenever (and however often) validation runs, stopping included.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._after_step: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # Restored but not applied yet: the state to resume from is still that one.
        return self._pending if self._pending is not None else capture()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # Validation's loader draws a number before any validation hook runs: remember the state here instead.
        self._after_step = capture()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and self._after_step is not None:
            restore(self._after_step)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._pending is not None:
            restore(self._pending)
            self._pending = None
