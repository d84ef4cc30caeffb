"""Preemption: on SIGTERM or SIGUSR1, finish the current step, log it, save a resume point and exit cleanly.

The signal may come to the whole process group (SLURM, systemd and `timeout` send it that way), so DataLoader worker
processes forked during fit block these signals: the main process decides, the workers keep feeding it until it has
saved. Before training starts there is nothing to save: `stop_on_signals_before_training` makes the command stop at
once with one line (`llmexp.errors.Interrupted`).

Under SLURM with auto-requeue the requeue signal (SIGUSR1) saves `hpc_ckpt_N.ckpt` and runs `scontrol requeue`, as
Lightning's own handler does, and the requeued job resumes from it; SIGTERM is left to Lightning. Lightning saves
inside the signal handler, where each rank of a multi-node job may be at a different point of its step: one rank
then waits in the save's barrier while another waits in a gradient all-reduce, and the job hangs. Here the handler
only notes the signal; the ranks agree on it and save at the end of a step.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException

from llmexp.errors import Interrupted
from llmexp.training.callbacks.resume_checkpoint import ResumeCheckpoint

log = logging.getLogger(__name__)

DEFAULT_SIGNALS = ("SIGTERM", "SIGUSR1")
_blocked_in_children: set[signal.Signals] = set()  # what processes forked now must not be stopped by
_before_training: dict[signal.Signals, Any] = {}  # handlers to put back when training starts


def _block_in_child() -> None:
    if _blocked_in_children:
        signal.pthread_sigmask(signal.SIG_BLOCK, _blocked_in_children)


os.register_at_fork(after_in_child=_block_in_child)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def stop_on_signals_before_training(signals: Iterable[str] = DEFAULT_SIGNALS) -> None:
    """Until `release_signals`, a termination signal raises `Interrupted` (one line, exit 128 + signal number)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        raise Interrupted(f"stopped by {name} before training started; nothing was saved", signum)

    if not _main_thread():
        return
    for name in signals:
        signum = signal.Signals[name]
        _before_training.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, stop)


def release_signals() -> None:
    """Put back the handlers from before: training starts (the Preemption callback and Lightning take over), or the
    run stopped before it."""
    if _main_thread():
        for signum, handler in _before_training.items():
            signal.signal(signum, handler)
    _before_training.clear()


class Preemption(L.Callback):
    """Turns a termination signal into `last.ckpt` at a step boundary and exit status 0 (resume: `ckpt_path=auto`)."""

    def __init__(self, signals: tuple[str, ...] | list[str] = DEFAULT_SIGNALS):
        self.signals = [signal.Signals[name] for name in signals]
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._handled: list[signal.Signals] = []
        self.requeue = False  # SLURM auto-requeue: save the requeue checkpoint and requeue instead of exiting

    @staticmethod
    def slurm_requeues(trainer: L.Trainer) -> bool:
        environment = trainer._accelerator_connector.cluster_environment
        return isinstance(environment, SLURMEnvironment) and environment.auto_requeue

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Before Lightning registers its handlers (it keeps ours and calls them after its own, which stops DDP
        # peers), so that a signal during strategy setup or checkpoint loading is not lost either.
        if stage != "fit" or not _main_thread():
            return
        self.requeue = self.slurm_requeues(trainer)
        if self.requeue:  # Lightning registers no requeue handler of its own where one is set
            self._handled = [signal.Signals(trainer._accelerator_connector.cluster_environment.requeue_signal)]
        else:
            self._handled = list(self.signals)
        for signum in self._handled:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)
        _blocked_in_children.update(self._handled)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
        previous = self._previous.get(signal.Signals(signum))
        if callable(previous):
            previous(signum, frame)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if not self.any_rank(trainer, self.received is not None or trainer.received_sigterm):
            return
        # Under SLURM auto-requeue only the requeue signal reaches `received`; a SIGTERM (scancel) does not requeue.
        if self.requeue and self.any_rank(trainer, self.received is not None):
            self.save_and_requeue(trainer)
            self.received = None
            return  # training goes on, as with Lightning's handler, until SLURM stops the job for its requeue
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path, weights_only=False)
        # The step is logged as if it were a logging step: Lightning logs after this hook, which we leave by raising.
        connector = trainer._logger_connector
        connector.log_metrics(connector.metrics["log"])
        if trainer.is_global_zero:
            name = self.received.name if self.received else "SIGTERM" if trainer.received_sigterm else None
            print(
                f"Preempted by {name or 'a signal on another rank'} after step {trainer.global_step}: saved {path}; "
                f"continue with: llmexp-train resume={trainer.default_root_dir}",
                file=sys.stderr,
                flush=True,
            )
        raise SIGTERMException  # a SystemExit Lightning knows: loggers are closed, the process exits with status 0

    @staticmethod
    def any_rank(trainer: L.Trainer, flag: bool) -> bool:
        """True on every rank when it is true on one: every rank must take part in what follows (the saves)."""
        return trainer.strategy.reduce_boolean_decision(flag, all=False) if trainer.world_size > 1 else flag

    @staticmethod
    def save_and_requeue(trainer: L.Trainer) -> None:
        """What Lightning's SLURM requeue handler does, at a step boundary every rank has reached: the requeue
        checkpoint, then `scontrol requeue` from rank 0."""
        trainer.save_checkpoint(trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir))
        if trainer.is_global_zero:
            job = os.environ.get("SLURM_JOB_ID")
            if os.environ.get("SLURM_ARRAY_JOB_ID"):
                job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
            done = subprocess.run(["scontrol", "requeue", str(job)], check=False).returncode == 0
            outcome = f"Requeued SLURM job: {job}" if done else f"Requeuing SLURM job {job} failed"
            print(f"{outcome} after step {trainer.global_step}", file=sys.stderr, flush=True)
        trainer.strategy.barrier("requeued")  # no rank ends before the job is requeued

    @staticmethod
    def checkpoint_path(trainer: L.Trainer) -> Path:
        for callback in trainer.callbacks:
            if isinstance(callback, ResumeCheckpoint) and callback.dirpath:
                return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            if handler is not None and _main_thread():
                signal.signal(signum, handler)
        self._previous.clear()
        _blocked_in_children.difference_update(self._handled)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "fit")  # Lightning skips the teardown hooks when fit raises
