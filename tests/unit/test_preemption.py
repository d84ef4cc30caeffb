"""Preemption handlers: ours outside SLURM (wrapping Lightning's), Lightning's requeue handlers alone under SLURM."""

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


def test_under_slurm_lightnings_requeue_handlers_are_left_alone(restore_handlers, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    preemption = Preemption()
    preemption.setup(_trainer(SLURMEnvironment(auto_requeue=True)), None, "fit")
    assert {s: signal.getsignal(s) for s in before} == before
