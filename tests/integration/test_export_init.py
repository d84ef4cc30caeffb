"""`llmexp-export` writes a directory `transformers` loads with the same outputs; `init_from=` starts from it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmexp.artifacts.hf_dir import load_hf_dir, save_hf_dir
from llmexp.artifacts.inference import load_for_inference
from llmexp.models import BertConfig, GPTConfig, T5Config
from llmexp.tokenizer import Tokenizer
from llmexp.training.run import train

transformers = pytest.importorskip("transformers")
ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load(ASSETS / "tokenizer.json")


def fake_checkpoint(path: Path, model, tokenizer: Tokenizer) -> Path:
    """What the training run saves, minus optimizer state: enough for inference and export."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"model_config": model.config.to_dict(), "tokenizer": tokenizer.to_str()}
    torch.save({"state_dict": state, "llmexp": meta}, path)
    return path


def test_export_command_writes_a_directory_transformers_loads(tmp_path, tokenizer):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=64)
    model = cfg.build().eval()
    ckpt = fake_checkpoint(tmp_path / "last.ckpt", model, tokenizer)
    out = tmp_path / "hf"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "llmexp.cli.export", f"ckpt_path={ckpt}", f"out={out}"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "for x in range(3): print(x)"
    ids = hf_tok(text)["input_ids"]
    assert ids == tokenizer.encode(text)
    with torch.no_grad():
        theirs = hf(torch.tensor([ids])).logits
        ours = model(torch.tensor([ids]))
    assert (theirs - ours).abs().max() < 1e-4
    assert hf_tok.eos_token == "<|endoftext|>"


def test_export_refuses_a_non_empty_directory(tmp_path, tokenizer):
    from llmexp.artifacts.hf_dir import export_checkpoint
    from llmexp.errors import CheckpointError

    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, max_seq_len=32)
    ckpt = fake_checkpoint(tmp_path / "last.ckpt", cfg.build(), tokenizer)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not empty"):
        export_checkpoint(ckpt, tmp_path / "out")


def test_an_interrupted_export_leaves_no_directory(tmp_path, tokenizer, monkeypatch):
    from llmexp.artifacts import hf_dir

    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, max_seq_len=32)
    ckpt = fake_checkpoint(tmp_path / "last.ckpt", cfg.build(), tokenizer)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hf_dir, "finish_export", killed)  # after the weights, before the directory is complete
    with pytest.raises(KeyboardInterrupt):
        hf_dir.export_checkpoint(ckpt, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize(
    "cfg",
    [
        GPTConfig(
            n_layer=1,
            n_head=4,
            n_kv_head=1,
            n_embd=32,
            max_seq_len=64,
            pos_emb="rope",
            norm="rmsnorm",
            mlp="swiglu",
            bias=False,
            tie_embeddings=False,
        ),
        BertConfig(n_layer=1, n_head=2, n_embd=32, max_seq_len=64),
        T5Config(n_layer=1, n_head=2, head_dim=8, n_embd=32, intermediate_size=48, mlp="geglu"),
    ],
    ids=["llama", "bert", "t5"],
)
def test_directory_round_trip_keeps_every_weight(tmp_path, tokenizer, cfg):
    cfg.vocab_size = tokenizer.vocab_size
    torch.manual_seed(0)
    model = cfg.build()
    save_hf_dir(model, tokenizer, tmp_path / "hf")
    loaded, loaded_tok = load_hf_dir(tmp_path / "hf")
    assert loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded_tok.to_str() == tokenizer.to_str()


@pytest.mark.slow
def test_init_from_an_hf_directory_starts_from_its_weights(make_cfg, tmp_path, tokenizer):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=256)
    model = cfg.build()
    save_hf_dir(model, tokenizer, tmp_path / "hf")
    # optimizer.lr=0 is refused (a run that cannot learn); 1e-12 moves no weight by more than ~1e-11
    overrides = ("experiment=smoke", f"init_from={tmp_path / 'hf'}", "trainer.max_steps=2", "optimizer.lr=1e-12")
    metrics = train(make_cfg(*overrides, "callbacks=minimal", "optimizer.weight_decay=0.0"))
    trained, trained_tok, _ = load_for_inference(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert metrics["step"] == 2
    assert trained_tok.to_str() == tokenizer.to_str()  # the directory's tokenizer, not a newly trained one
    for name, tensor in model.state_dict().items():
        assert torch.allclose(trained.state_dict()[name], tensor, rtol=0, atol=1e-9), name
