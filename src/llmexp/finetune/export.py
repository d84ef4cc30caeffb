"""Write a model as an inference checkpoint: the format `load_for_inference` (generate, serve, export) reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmexp.data.tokenizer import Tokenizer
from llmexp.models.generation import SamplingConfig


def save_inference_checkpoint(path: str | Path, model: nn.Module, tokenizer: Tokenizer, metadata: dict[str, Any]):
    """Plain tensors and JSON-able metadata only, so the file loads with `torch.load(weights_only=True)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**metadata, "model_config": model.config.to_dict(), "tokenizer": tokenizer.to_str()}
    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"llmexp": meta, "state_dict": state}, path)
    return path


def generation_config(tokenizer: Tokenizer, sampling: SamplingConfig | None = None) -> dict[str, Any]:
    """`generation_config.json` content in transformers' field names: EOS, lengths and sampling defaults."""
    sampling = sampling or SamplingConfig(max_new_tokens=128, temperature=0.8, top_k=50)
    config: dict[str, Any] = {
        "bos_token_id": tokenizer.eos_id,
        "eos_token_id": tokenizer.eos_id,
        "pad_token_id": tokenizer.eos_id,
        "max_new_tokens": sampling.max_new_tokens,
        "do_sample": sampling.temperature > 0,
        "repetition_penalty": sampling.repetition_penalty,
    }
    if sampling.temperature > 0:
        config["temperature"] = sampling.temperature
        if sampling.top_k is not None:
            config["top_k"] = sampling.top_k
        if sampling.top_p is not None:
            config["top_p"] = sampling.top_p
    return config


def write_generation_config(directory: str | Path, tokenizer: Tokenizer, sampling: SamplingConfig | None = None):
    path = Path(directory) / "generation_config.json"
    path.write_text(json.dumps(generation_config(tokenizer, sampling), indent=2) + "\n")
    return path
