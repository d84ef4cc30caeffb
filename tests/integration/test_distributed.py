"""Two processes on CPU (gloo) train the same curve as one process at the same global batch, and save and resume.

Each run goes through the real command line: Lightning starts the second rank by re-running `llmexp.cli.train` with
the run folder pinned, as it does for a user on a workstation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmexp.artifacts.consolidate import consolidate
from llmexp.artifacts.inference import load_for_inference
from scale_helpers import read_losses

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

TESTS = Path(__file__).resolve().parents[1]
STEPS, STOP = 12, 6
COMMON = (
    "experiment=smoke",
    "callbacks=minimal",
    "trainer.accelerator=cpu",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=6",
    "eval.limit_batches=2",
)
GLOBAL_BATCH, VAL_BATCH = 8, 16


def train_cli(run: Path, cache: Path, *overrides: str) -> None:
    env = {
        **os.environ,
        "LLMEXP_CACHE_DIR": str(cache),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    record = ("+callbacks.record._target_=scale_helpers.RecordGlobalLoss", f"+callbacks.record.path={run}.jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", *COMMON, *record, *overrides, f"hydra.run.dir={run}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def per_rank(devices: int) -> tuple[str, ...]:
    return (
        f"trainer.devices={devices}",
        f"data.batch_size={GLOBAL_BATCH // devices}",
        f"data.val_batch_size={VAL_BATCH // devices}",
    )


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The reference: one process, the whole global batch, no interruption."""
    run = tmp_path_factory.mktemp("single") / "run"
    train_cli(run, cache_dir, "strategy=single", *per_rank(1))
    return run


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_processes_reproduce_the_single_process_curve_across_a_resume(strategy, single, cache_dir, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    stop = ("+callbacks.stop._target_=helpers.StopAtStep", f"+callbacks.stop.step={STOP}")
    train_cli(first, cache_dir, f"strategy={strategy}", *per_rank(2), *stop)
    last = first / "checkpoints" / "last.ckpt"
    assert last.is_dir() if strategy == "fsdp2" else last.is_file()  # fsdp2 writes one shard per rank
    # A checkpoint inside a run folder continues that run in its folder; losses are recorded to second.jsonl.
    train_cli(second, cache_dir, f"strategy={strategy}", *per_rank(2), f"ckpt_path={last}", "~callbacks.stop")

    reference = read_losses(f"{single}.jsonl")
    before, after = read_losses(f"{first}.jsonl"), read_losses(f"{second}.jsonl")
    assert sorted(reference) == list(range(STEPS))
    assert sorted(before) == list(range(STOP)) and sorted(after) == list(range(STOP, STEPS))
    for step, loss in {**before, **after}.items():
        assert loss == pytest.approx(reference[step], abs=2e-4), (step, loss, reference[step])
    assert reference[STEPS - 1] < reference[0] - 0.1  # the curve being compared actually moves

    final, expected = (json.loads((r / "final_metrics.json").read_text()) for r in (first, single))
    assert final["step"] == expected["step"] == STEPS
    assert final["val/loss"] == pytest.approx(expected["val/loss"], abs=2e-4)
    if strategy == "fsdp2":
        # The sharded folder consolidates into one file that loads for inference with the trained weights.
        model, tokenizer, meta = load_for_inference(consolidate(first / "checkpoints" / "last.ckpt"))
        assert meta["model_config"]["n_embd"] == model.config.n_embd == 32
        assert tokenizer.vocab_size == model.config.vocab_size


def test_the_readme_fsdp2_command_ends(tmp_path, cache_dir):
    """The command the README gives for fsdp2, with the default callbacks (samples included), finishes and writes
    samples from the full model; it once hung after fit while rank 0 sampled from its shard alone."""
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cache_dir)}
    command = ["experiment=smoke", "strategy=fsdp2", "trainer.devices=2", "trainer.accelerator=cpu"]
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", *command, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads((tmp_path / "final_metrics.json").read_text())["step"] == 20
    assert (tmp_path / "samples.txt").read_text().strip()
