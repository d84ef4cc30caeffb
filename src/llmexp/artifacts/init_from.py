"""`init_from=`: start a run from existing weights (our checkpoint or a local `transformers` directory).

Only the weights (with the model's shape and its tokenizer) are taken: optimizer, schedule and step start fresh.
Resuming a run, with its optimizer and data position, is `ckpt_path=`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmexp.artifacts.checkpoint import read_checkpoint
from llmexp.artifacts.inference import tokenizer_from_checkpoint
from llmexp.errors import CheckpointError
from llmexp.models import config_from_dict
from llmexp.tokenizer import Tokenizer


@dataclass
class InitialWeights:
    model_config: Any
    state_dict: dict[str, torch.Tensor]
    tokenizer: Tokenizer | None
    chat_template: dict | None = None  # an instruction-tuned checkpoint's template: the format its model expects


def load_initial_weights(path: str | Path) -> InitialWeights:
    """Weights, model config and tokenizer (None when an HF directory has no tokenizer.json) from `path`."""
    path = Path(path)
    if path.is_dir():
        from llmexp.artifacts.hf_dir import load_hf_dir

        model, tokenizer = load_hf_dir(path)
        return InitialWeights(model.config, model.state_dict(), tokenizer)
    if not path.exists():
        raise CheckpointError(f"init_from={path}: no such file or directory")
    checkpoint = read_checkpoint(path, setting="init_from")
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    config = config_from_dict(checkpoint["llmexp"]["model_config"])
    template = checkpoint["llmexp"].get("chat_template")
    return InitialWeights(config, state, tokenizer_from_checkpoint(checkpoint), template)
