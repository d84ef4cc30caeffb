"""Fine-tuning runs through `llmexp-train`'s run function with the shipped experiment configs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from llmexp.artifacts.checkpoint import read_checkpoint
from llmexp.artifacts.inference import load_for_inference, save_inference_checkpoint
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer
from llmexp.training.run import train

ASSETS = Path(__file__).resolve().parents[1] / "assets"

ASSETS = Path(__file__).resolve().parents[1] / "assets"

POSITIVE = ["great", "good", "lovely", "wonderful", "superb"]
NEGATIVE = ["awful", "bad", "terrible", "boring", "dull"]
FILLER = ["the", "a", "movie", "film", "plot", "actor", "scene", "story", "it", "was", "and", "with", "this", "that"]


def write_sentiment(path: Path, rows: int, seed: int) -> None:
    """Filler words around one sentiment word; 60% positive, so always answering 'positive' scores about 0.6."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for _ in range(rows):
            label = "positive" if rng.random() < 0.6 else "negative"
            words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
            words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
            handle.write(json.dumps({"text": " ".join(words), "label": label}) + "\n")


@pytest.mark.slow
def test_classification_beats_the_majority_baseline_clearly(make_cfg, tmp_path):
    write_sentiment(tmp_path / "train.jsonl", 400, seed=0)
    write_sentiment(tmp_path / "val.jsonl", 100, seed=1)
    cfg = make_cfg(
        "experiment=finetune_classification", "model=gpt_tiny", "tokenizer.vocab_size=300", "callbacks=minimal",
        f"data.train_file={tmp_path / 'train.jsonl'}", f"data.val_file={tmp_path / 'val.jsonl'}", "data.batch_size=16",
        "trainer.max_steps=60", "trainer.val_check_interval=30",
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["val/majority_acc"] < 0.7
    assert metrics["val/acc"] >= metrics["val/majority_acc"] + 0.2
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["llmexp"]["label_names"] == ["negative", "positive"]


@pytest.mark.slow
def test_sft_with_lora_writes_merged_weights_that_serve_loads(make_cfg, tmp_path):
    rows = [{"instruction": f"Repeat the word {w}.", "input": "", "output": f"{w} {w} {w}"} for w in FILLER * 4]
    (tmp_path / "sft.json").write_text(json.dumps(rows))
    cfg = make_cfg(
        "experiment=sft", "model=gpt_tiny", "tokenizer.vocab_size=300", "callbacks.progress_bar=null",
        "callbacks.samples.max_new_tokens=8", "finetune=lora",
        "finetune.r=4", f"data.train_file={tmp_path / 'sft.json'}", "data.block_size=64", "data.batch_size=4",
        "data.val_fraction=0.1", "trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.limit_val_batches=1",
    )  # fmt: skip
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/loss"]))
    last = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert last["llmexp"]["finetune"]["name"] == "lora"
    assert any(".lora_A." in key for key in last["state_dict"])
    model, _, metadata = load_for_inference(tmp_path / "run" / "checkpoints" / "merged.ckpt")
    assert not any("lora" in key for key in model.state_dict())
    assert metadata["chat_template"]["generation_prompt"] == "<|assistant|>\n"
    # Samples continue held-out instructions rendered with the chat template.
    assert (tmp_path / "run" / "samples.txt").read_text().startswith("<|user|>\nRepeat the word ")


@pytest.mark.slow
def test_continued_pretraining_with_lora_keeps_the_lm_metrics_and_merges(make_cfg, tmp_path):
    readme = Path(__file__).resolve().parents[2] / "README.md"
    cfg = make_cfg(
        "experiment=continued_pretraining", "model=gpt_tiny", "tokenizer.vocab_size=300", "callbacks=minimal",
        f"data.corpus.paths=[{readme}]", "data.corpus.chunk_chars=500", "data.block_size=32", "data.batch_size=4",
        "data.val_batch_size=4", "data.corpus.val_fraction=0.2", "finetune=lora", "trainer.max_steps=4",
        "trainer.val_check_interval=4", "trainer.limit_val_batches=1", "eval.limit_batches=1",
    )  # fmt: skip
    metrics = train(cfg)
    assert {"val/loss", "val/bpb"} <= set(metrics)
    _, _, metadata = load_for_inference(tmp_path / "run" / "checkpoints" / "merged.ckpt")
    assert metadata["task"] == "continued_pretraining" and metadata["finetune"]["name"] == "lora"


@pytest.mark.slow
def test_classification_initialised_from_our_checkpoint_keeps_frozen_weights(make_cfg, tmp_path):
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(0)
    base = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=64).build()
    ckpt = save_inference_checkpoint(tmp_path / "base.ckpt", base, tokenizer, {})
    write_sentiment(tmp_path / "train.jsonl", 100, seed=0)
    cfg = make_cfg(
        "experiment=finetune_classification", f"init_from={ckpt}", "finetune=freeze", "finetune.layers=2",
        f"data.train_file={tmp_path / 'train.jsonl'}", "data.block_size=64", "data.batch_size=16", "callbacks=minimal",
        "trainer.max_steps=5", "trainer.val_check_interval=5",
    )  # fmt: skip
    train(cfg)
    state = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    frozen = [k for k in base.state_dict() if k.startswith(("blocks.", "wte.", "wpe."))]
    assert all(torch.equal(state[f"model.backbone.{k}"], base.state_dict()[k]) for k in frozen)
    assert not torch.equal(state["model.head.weight"], torch.zeros_like(state["model.head.weight"]))
    assert Tokenizer.load(tmp_path / "run" / "tokenizer.json").sha256() == tokenizer.sha256()
