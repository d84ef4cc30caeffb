"""A golden loss curve: `gpt_tiny` for 20 steps, fp32 on the CPU, on a small corpus stored with the tests. Any change
to initialisation, the forward pass, the loss, the optimizer, the schedule or the data order moves it.

The recorded curve is tests/assets/golden_loss_gpt_tiny.json; regenerate it only for an intended change
(`LLMEXP_WRITE_GOLDEN=1 pytest tests/integration/test_golden_loss.py`) and say why in the commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmexp.training.run import train

ASSETS = Path(__file__).resolve().parents[1] / "assets"
GOLDEN = ASSETS / "golden_loss_gpt_tiny.json"
# fp32 kernels differ in summation order between CPUs (AVX2 vs AVX-512): 20 steps amplify 1e-7 differences to
# ~1e-5; a real change to the maths moves the curve by 1e-2 or more within a few steps.
TOLERANCE = 2e-4


@pytest.mark.slow
def test_gpt_tiny_follows_the_golden_loss_curve(make_cfg, tmp_path):
    record = tmp_path / "losses.jsonl"
    cfg = make_cfg(
        "experiment=smoke",
        "callbacks=minimal",
        "+callbacks.record._target_=helpers.RecordLoss",
        f"+callbacks.record.path={record}",
        "model=gpt_tiny",
        "model.dropout=0.0",
        "data=text_files",
        f"data.corpus.paths=[{ASSETS / 'shakespeare_48k.txt'}]",
        "data.corpus.chunk_chars=2000",
        "data.corpus.val_fraction=0.1",
        "data.block_size=64",
        "data.batch_size=8",
        "data.val_batch_size=4",
        "tokenizer=pretrained",
        f"tokenizer.path={ASSETS / 'tokenizer.json'}",
        "trainer.max_steps=20",
        "trainer.precision=32-true",
        "trainer.accelerator=cpu",
        "seed=1234",
    )
    train(cfg)
    losses = [json.loads(line)["loss"] for line in record.read_text().splitlines()]
    assert len(losses) == 20
    if os.environ.get("LLMEXP_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"steps": 20, "losses": losses}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())["losses"]
    worst = max(abs(a - b) for a, b in zip(losses, golden, strict=True))
    assert worst <= TOLERANCE, f"largest per-step difference {worst:.2e} > {TOLERANCE:g}:\n{losses}\n{golden}"
    assert golden[-1] < golden[0] - 0.5  # the curve being guarded actually moves
