"""Load a checkpoint for inference (generate, eval, serve, export) and write inference-only checkpoints (merged LoRA
weights); both sides read and write the same layout: `llmexp` metadata plus `state_dict` with a `model.` prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmexp.artifacts.checkpoint import read_checkpoint, save_digested
from llmexp.errors import CheckpointError
from llmexp.models import config_from_dict
from llmexp.tokenizer import Tokenizer


def pick_device(device: str) -> torch.device:
    """`auto`: the GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def tokenizer_from_checkpoint(checkpoint: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_str(checkpoint["llmexp"]["tokenizer"])


def model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """The bare model with the checkpoint's weights (the task's `model.` prefix stripped)."""
    if "state_dict" not in checkpoint:
        raise CheckpointError("a sharded checkpoint folder holds no single state_dict; run llmexp-convert on it first")
    model = config_from_dict(checkpoint["llmexp"]["model_config"]).build()
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state)
    return model


def load_for_inference(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Tokenizer, dict]:
    """(model in eval mode on `device`, tokenizer, metadata) from one checkpoint file."""
    checkpoint = read_checkpoint(path)
    model = model_from_checkpoint(checkpoint).to(device).eval()
    return model, tokenizer_from_checkpoint(checkpoint), checkpoint["llmexp"]


def save_inference_checkpoint(path: str | Path, model: nn.Module, tokenizer: Tokenizer, metadata: dict[str, Any]):
    """Plain tensors and JSON-able metadata only, so the file loads with `torch.load(weights_only=True)`; written
    atomically with the same digest as training checkpoints, so a crash mid-write or a flipped byte is caught."""
    path = Path(path)
    meta = {**metadata, "model_config": model.config.to_dict(), "tokenizer": tokenizer.to_str()}
    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_digested({"llmexp": meta, "state_dict": state}, path)
    return path


def refuse_unmerged(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """A LoRA run's last.ckpt holds adapter layers that no plain model has: point to its merged weights."""
    if any(".lora_A." in key for key in checkpoint["state_dict"]):
        merged = Path(path).with_name("merged.ckpt")
        raise CheckpointError(f"ckpt_path={path}: holds LoRA adapters; use the merged weights, {merged}")
