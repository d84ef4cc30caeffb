"""GPU-only strategies and half precision: train, stop part-way, resume, consolidate, load for inference.

Skipped without CUDA (tests/conftest.py). On a GPU machine they use up to two devices; outcomes and throughput go
into BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmexp.artifacts.consolidate import consolidate
from llmexp.artifacts.inference import load_for_inference

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

STEPS, STOP = 20, 10
COMMON = ("experiment=smoke", "callbacks=minimal", f"trainer.max_steps={STEPS}", "trainer.val_check_interval=10")


def devices() -> int:
    return min(2, torch.cuda.device_count())


def train_cli(run: Path, cache: Path, *overrides: str) -> dict:
    tests = str(Path(__file__).resolve().parents[1])  # helpers.StopAtStep
    env = {
        **os.environ,
        "LLMEXP_CACHE_DIR": str(cache),
        "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", *COMMON, *overrides, f"hydra.run.dir={run}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((run / "final_metrics.json").read_text())


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("fsdp", ()),
        ("fsdp", ("strategy.activation_checkpointing=true", "strategy.sharding_strategy=SHARD_GRAD_OP")),
        ("fsdp2", ()),
        ("deepspeed_zero2", ()),
        ("deepspeed_zero3", ()),
        ("deepspeed_zero3_offload", ()),
    ],
)
def test_sharded_strategy_trains_resumes_and_consolidates(strategy, extra, tmp_path, cache_dir):
    common = (f"strategy={strategy}", f"trainer.devices={devices()}", "trainer.precision=bf16-mixed", *extra)
    stop = ("+callbacks.stop._target_=helpers.StopAtStep", f"+callbacks.stop.step={STOP}")
    first = train_cli(tmp_path / "a", cache_dir, *common, *stop)
    assert first["step"] == STOP
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert last.is_dir()  # sharded: one folder, a shard per rank
    # A checkpoint inside a run folder continues that run, in that folder (llmexp.config.resume).
    resumed = train_cli(tmp_path / "a", cache_dir, *common, f"ckpt_path={last}", "~callbacks.stop")
    assert resumed["step"] == STEPS and resumed["val/loss"] < first["val/loss"] + 0.05

    model, tokenizer, meta = load_for_inference(consolidate(tmp_path / "a" / "checkpoints" / "last.ckpt"))
    assert meta["model_config"]["n_embd"] == model.config.n_embd
    assert model(torch.tensor([tokenizer.encode("for x in")])).isfinite().all()


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true", "16-mixed"])
def test_half_precision_trains_on_one_gpu(precision, tmp_path, cache_dir):
    final = train_cli(tmp_path / "run", cache_dir, f"trainer.precision={precision}", "trainer.devices=1")
    assert final["step"] == STEPS
    assert torch.isfinite(torch.tensor(final["val/loss"])) and final["val/loss"] < 6.5
