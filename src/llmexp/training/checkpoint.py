"""Load llmexp checkpoints without unpickling arbitrary objects (`weights_only=True`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmexp.data.tokenizer import Tokenizer
from llmexp.errors import CheckpointError
from llmexp.models import config_from_dict
from llmexp.training.sharded import read_sharded_metadata


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():  # a sharded folder (fsdp, fsdp2, deepspeed): its metadata; the weights stay with the strategy
        return read_sharded_metadata(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding objects we refuse to unpickle
        raise CheckpointError(
            f"ckpt_path={path}: cannot be read safely ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from err
    if not isinstance(checkpoint, dict) or "llmexp" not in checkpoint:
        raise CheckpointError(f"ckpt_path={path}: not an llmexp checkpoint (no 'llmexp' metadata)")
    return checkpoint


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
