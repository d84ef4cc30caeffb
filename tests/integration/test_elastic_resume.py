"""Elastic resume on gloo: a run checkpointed with 2 processes continues with 1 and then with 2 again, keeping the
global batch of 8 (4 per process; gradient accumulation 2 when alone) and the global sample order, so every step's
loss is the uninterrupted one-process run's; a layout that cannot keep the global batch is refused in one line."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture(scope="module")
def stopped_at_two(tmp_path_factory, cache_dir, one_process_curve) -> Path:
    """A run of scale_helpers.CURVE on 2 processes, stopped after 2 of its 6 steps (its last.ckpt is at step 2); the
    one-process reference trains meanwhile."""
    run = tmp_path_factory.mktemp("elastic") / "run"
    stop = ("+callbacks.stop._target_=helpers.StopAtStep", "+callbacks.stop.step=2")
    result = train(cache_dir, *CURVE, *TWO, *stop, *record_loss(f"{run}.jsonl"), f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_a_run_resumed_on_1_then_2_processes_trains_the_uninterrupted_curve(
    stopped_at_two, one_process_curve, tmp_path, cache_dir
):
    run = tmp_path / "run"
    shutil.copytree(stopped_at_two, run)
    one_process = ("trainer.devices=1", "strategy=single", "+callbacks.stop.step=4")
    alone = train(cache_dir, f"resume={run}", *one_process, *record_loss(tmp_path / "one.jsonl"))
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "trainer.accumulate_grad_batches=2 (the checkpoint had 2 process(es)" in alone.stdout + alone.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["accumulate_grad_batches"] == 2
    again = train(cache_dir, f"resume={run}", *TWO, "~callbacks.stop", *record_loss(tmp_path / "two.jsonl"))
    assert again.returncode == 0, again.stderr[-3000:]

    first = read_losses(f"{stopped_at_two}.jsonl")
    one, two = read_losses(tmp_path / "one.jsonl"), read_losses(tmp_path / "two.jsonl")
    assert (sorted(first), sorted(one), sorted(two)) == ([0, 1], [2, 3], [4, 5])  # nothing trained twice or skipped
    reference = one_process_curve.losses()
    assert sorted(reference) == list(range(CURVE_STEPS))
    for step, loss in {**first, **one, **two}.items():
        assert loss == pytest.approx(reference[step], abs=1e-6), (step, loss, reference[step])


def test_a_layout_that_cannot_keep_the_global_batch_is_refused_in_one_line(stopped_at_two, tmp_path, cache_dir):
    run = tmp_path / "run"
    shutil.copytree(stopped_at_two, run)
    result = train(cache_dir, f"resume={run}", "trainer.devices=1", "strategy=single", "data.batch_size=3")
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "global batch is 8 samples" in line and "data.batch_size=3" in line and "init_from" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        p.name for p in (stopped_at_two / "checkpoints").iterdir()
    )  # nothing trained or written
