"""Keep the training state when submitit requeues a SLURM job (hydra/launcher=slurm, preemption or time limit).

submitit owns the job's requeue signal (USR2 by default) and requeues without saving anything; Lightning's own requeue
handler (USR1) never runs then. This callback wraps submitit's handler: first Lightning saves its requeue checkpoint
(hpc_ckpt_<n>.ckpt in the run folder, which the requeued job resumes from automatically), then submitit requeues.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


def _submitit_handlers() -> dict[int, Any]:
    found = {}
    for signum in (signal.SIGUSR1, signal.SIGUSR2):
        handler = signal.getsignal(signum)
        if callable(handler) and getattr(handler, "__module__", "").startswith("submitit"):
            found[signum] = handler
    return found


class CheckpointBeforeRequeue(L.Callback):
    """Inactive outside submitit jobs."""

    def __init__(self) -> None:
        self._wrapped: dict[int, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._wrapped = _submitit_handlers()
        for signum, requeue in self._wrapped.items():

            def handler(num: int, frame: Any, requeue: Any = requeue) -> None:
                path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
                log.warning("signal %s: saving %s before submitit requeues the job", signal.Signals(num).name, path)
                trainer.save_checkpoint(path, weights_only=False)
                requeue(num, frame)

            signal.signal(signum, handler)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for signum, requeue in self._wrapped.items():
            signal.signal(signum, requeue)
        self._wrapped = {}
