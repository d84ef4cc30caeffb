"""Preemption handlers: ours outside SLURM (wrapping Lightning's); under SLURM auto-requeue ours for the requeue signal
(noted, acted on at a step boundary every rank has reached) and Lightning's alone for SIGTERM."""

import os
import signal

import lightning as L
import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment

from llmexp.training.callbacks.preemption import Preemption


def _trainer(*plugins) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, plugins=list(plugins))


@pytest.fixture
def restore_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_outside_slurm_a_signal_is_recorded_and_lightnings_handler_still_runs(restore_handlers):
    seen = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))  # stands in for Lightning's notifier
    preemption = Preemption()
    trainer = _trainer()
    preemption.setup(trainer, None, "fit")
    os.kill(os.getpid(), signal.SIGTERM)
    assert preemption.received == signal.SIGTERM and seen == [signal.SIGTERM]
    preemption.teardown(trainer, None, "fit")
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_under_slurm_the_requeue_signal_is_noted_for_a_step_boundary_and_sigterm_left_to_lightning(
    restore_handlers, monkeypatch
):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    sigterm = signal.getsignal(signal.SIGTERM)
    preemption = Preemption()
    trainer = _trainer(SLURMEnvironment(auto_requeue=True))
    preemption.setup(trainer, None, "fit")
    assert preemption.requeue and signal.getsignal(signal.SIGTERM) == sigterm
    # Lightning registers its own requeue handler (which saves inside the signal handler) only where none is set.
    assert signal.getsignal(signal.SIGUSR1) not in (None, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert preemption.received == signal.SIGUSR1  # noted only: nothing saved or requeued inside the handler
    preemption.teardown(trainer, None, "fit")
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
