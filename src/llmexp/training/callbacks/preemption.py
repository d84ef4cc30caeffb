"""Preemption: on SIGTERM or SIGUSR1, finish the current step, save a resume point and exit cleanly.

Under SLURM with auto-requeue, Lightning's own handlers already do the right thing (SIGUSR1: save `hpc_ckpt_N.ckpt`
and `scontrol requeue`; the requeued job resumes from it), so they are left alone there.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException

from llmexp.training.callbacks.resume_checkpoint import ResumeCheckpoint

log = logging.getLogger(__name__)


class Preemption(L.Callback):
    """Turns a termination signal into `last.ckpt` at a step boundary and exit status 0 (resume: `ckpt_path=auto`)."""

    def __init__(self, signals: tuple[str, ...] | list[str] = ("SIGTERM", "SIGUSR1")):
        self.signals = [signal.Signals[name] for name in signals]
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @staticmethod
    def slurm_requeues(trainer: L.Trainer) -> bool:
        environment = trainer._accelerator_connector.cluster_environment
        return isinstance(environment, SLURMEnvironment) and environment.auto_requeue

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registers its handlers just before this hook; ours wrap them (its SIGTERM handler stops DDP peers).
        if self.slurm_requeues(trainer) or threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
        previous = self._previous.get(signal.Signals(signum))
        if callable(previous):
            previous(signum, frame)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # every rank must take part in the save
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero:
            name = self.received.name if self.received is not None else "a signal on another rank"
            print(
                f"Preempted by {name} after step {trainer.global_step}: saved {path}; "
                f"continue with: llmexp-train resume={trainer.default_root_dir}",
                file=sys.stderr,
                flush=True,
            )
        raise SIGTERMException  # a SystemExit Lightning knows: loggers are closed, the process exits with status 0

    @staticmethod
    def checkpoint_path(trainer: L.Trainer) -> Path:
        for callback in trainer.callbacks:
            if isinstance(callback, ResumeCheckpoint) and callback.dirpath:
                return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signum, handler)
        self._previous.clear()
