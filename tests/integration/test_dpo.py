"""DPO as a user runs it: an SFT model, then preference pairs. The policy's preference margin on held-out pairs rises,
the reference stays the SFT model, and the chat template the SFT run used is the one the DPO model keeps."""

from __future__ import annotations

import json

import pytest
import torch

from llmexp.artifacts.checkpoint import read_checkpoint
from llmexp.tracking.metrics import read_metrics_csv
from llmexp.training.run import train

TEMPLATE = {"user": "### Q\n{content}\n", "generation_prompt": "### A\n", "stop": ["### Q"]}


@pytest.mark.slow
def test_dpo_after_sft_raises_the_margin_keeps_the_reference_and_the_template(make_cfg, tmp_path):
    pairs = [(a, b) for a in range(10) for b in range(10)]
    rows = [{"instruction": f"Add {a} and {b}.", "output": f"The sum is {a + b}."} for a, b in pairs]
    (tmp_path / "sft.json").write_text(json.dumps(rows))
    fast = ("model=gpt_tiny", "data.block_size=48", "trainer.limit_val_batches=null", "callbacks.samples.count=1")
    sft_dir = tmp_path / "sft"
    cfg = make_cfg("experiment=sft", f"data.train_file={tmp_path / 'sft.json'}", "trainer.max_steps=30", *fast,
                   run_dir=sft_dir)  # fmt: skip
    cfg.data.template.update(TEMPLATE)  # a template of the user's own, unlike the default
    train(cfg)
    sft = read_checkpoint(sft_dir / "checkpoints" / "last.ckpt")
    assert sft["llmexp"]["chat_template"]["user"] == TEMPLATE["user"]

    preferences = [{"prompt": f"Add {a} and {b}.", "chosen": f"The sum is {a + b}.", "rejected": "I do not know."}
                   for a, b in pairs]  # fmt: skip
    (tmp_path / "pairs.json").write_text(json.dumps(preferences))
    dpo_dir = tmp_path / "dpo"
    train(
        make_cfg("experiment=dpo", f"init_from={sft_dir / 'checkpoints' / 'last.ckpt'}",
                 f"data.train_file={tmp_path / 'pairs.json'}", "data.val_fraction=0.2", "optimizer.lr=2e-3",
                 "trainer.max_steps=40", "trainer.val_check_interval=10", *fast, run_dir=dpo_dir)
    )  # fmt: skip
    metrics = read_metrics_csv(dpo_dir / "metrics.csv")
    margins = [value for _, value in metrics["val/reward_margin"]]
    assert len(margins) >= 4 and margins[-1] > margins[0] + 0.5, margins  # held-out pairs: 20 of 100
    assert [value for _, value in metrics["val/reward_acc"]][-1] >= 0.9

    dpo = read_checkpoint(dpo_dir / "checkpoints" / "last.ckpt")
    for key, value in dpo["dpo_reference"].items():  # the frozen reference is still the SFT model
        torch.testing.assert_close(value, sft["state_dict"][f"model.{key}"], rtol=0, atol=0)
    assert dpo["llmexp"]["chat_template"] == sft["llmexp"]["chat_template"]
    assert dpo["llmexp"]["task"] == "dpo"
    assert (dpo_dir / "samples.txt").read_text().startswith("### Q\nAdd ")  # prompted in the SFT format
