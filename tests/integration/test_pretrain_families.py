"""Each family pretrains from its experiment config on the embedded corpus, and its validation loss falls."""

import pytest

from llmexp.artifacts.inference import load_for_inference
from llmexp.tracking.metrics import read_metrics_csv
from llmexp.training.run import train

FAST = ("trainer.max_steps=40", "trainer.val_check_interval=10", "trainer.limit_val_batches=2", "eval.limit_batches=2")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", "llama", "bert", "t5"])
def test_family_pretrains_and_val_loss_falls(make_cfg, tmp_path, family):
    overrides = [f"experiment=pretrain_{family}", *FAST, "callbacks.progress_bar=null"]
    if family != "bert":
        overrides.append("callbacks.samples.max_new_tokens=4")
    metrics = train(make_cfg(*overrides))
    val = [v for _, v in read_metrics_csv(tmp_path / "run" / "metrics.csv")["val/loss"]]
    assert len(val) >= 4
    assert val[-1] < val[0] - 0.2, val
    model, tokenizer, _ = load_for_inference(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert model.config.family == ("gpt" if family in ("gpt", "llama") else family)
    assert tokenizer.vocab_size == model.config.vocab_size
    assert metrics["step"] == 40
