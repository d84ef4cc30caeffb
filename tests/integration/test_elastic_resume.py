"""Elastic resume on gloo: a run checkpointed with 2 processes continues with 1 and then with 2 again, keeping the
global batch of 8 (4 per process; gradient accumulation 2 when alone) and the global sample order, so every step's
loss is the uninterrupted one-process run's. (The one-line refusal of a layout that cannot keep the global batch:
tests/unit/test_elastic.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scale_helpers import CURVE, CURVE_STEPS, read_losses, record_loss

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

TESTS = Path(__file__).resolve().parents[1]
TWO = ("strategy=ddp", "trainer.devices=2", "data.batch_size=4", "data.val_batch_size=8")


def train(cache: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LLMEXP_CACHE_DIR": str(cache),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "llmexp.cli.train", *overrides]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_a_run_resumed_on_1_then_2_processes_trains_the_uninterrupted_curve(one_process_curve, tmp_path, cache_dir):
    run = tmp_path / "run"  # the one-process reference trains in the background meanwhile
    stop = ("+callbacks.stop._target_=helpers.StopAtStep", "+callbacks.stop.step=2")
    first = train(cache_dir, *CURVE, *TWO, *stop, *record_loss(tmp_path / "first.jsonl"), f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-3000:]
    one_process = ("trainer.devices=1", "strategy=single", "+callbacks.stop.step=4")
    alone = train(cache_dir, f"resume={run}", *one_process, *record_loss(tmp_path / "one.jsonl"))
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "trainer.accumulate_grad_batches=2 (the checkpoint had 2 process(es)" in alone.stdout + alone.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["accumulate_grad_batches"] == 2
    again = train(cache_dir, f"resume={run}", *TWO, "~callbacks.stop", *record_loss(tmp_path / "two.jsonl"))
    assert again.returncode == 0, again.stderr[-3000:]

    losses = [read_losses(tmp_path / f"{name}.jsonl") for name in ("first", "one", "two")]
    assert [sorted(part) for part in losses] == [[0, 1], [2, 3], [4, 5]]  # nothing trained twice or skipped
    reference = one_process_curve.losses()
    assert sorted(reference) == list(range(CURVE_STEPS))
    for step, loss in {**losses[0], **losses[1], **losses[2]}.items():
        assert loss == pytest.approx(reference[step], abs=1e-6), (step, loss, reference[step])
