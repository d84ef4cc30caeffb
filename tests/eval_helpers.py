"""Shared by the evaluation tests: a tiny checkpoint, jsonl files, and the command-line entry points in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer

ASSETS = Path(__file__).resolve().parent / "assets"


def write_checkpoint(path: Path, seed: int = 0, max_seq_len: int = 256) -> Path:
    """An llmexp checkpoint of a randomly initialised tiny GPT (the format load_for_inference reads)."""
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=max_seq_len)
    model = config.build()
    checkpoint = {
        "llmexp": {"model_config": config.to_dict(), "tokenizer": tokenizer.to_str()},
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_cli(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cwd / "cache"), "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
