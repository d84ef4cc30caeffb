"""Exact weight interop with `transformers`, through the HF adapters each family's FamilySpec lists (GPT ->
GPT2LMHeadModel or LlamaForCausalLM, BERT -> BertForMaskedLM, T5 -> T5ForConditionalGeneration). Reading and writing
whole HF directories is `llmexp.artifacts.hf_dir`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmexp.errors import CheckpointError
from llmexp.models.spec import build_model, family_of, hf_adapter_for_type


def architecture(config: Any) -> str:
    """Which HF architecture (`model_type`) represents this config exactly (ConfigError when none does)."""
    return family_of(config).hf_adapter(config).model_type


def hf_config(config: Any, eos_id: int | None = None):
    """The `transformers` config of the same shape."""
    return family_of(config).hf_adapter(config).hf_config(config, eos_id)


def config_from_hf(hf: Any) -> Any:
    """Our config of the same shape as a `transformers` config (CheckpointError for other model types)."""
    return hf_adapter_for_type(hf.model_type).config_from_hf(hf)


def to_hf_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict under HF names and layouts (tied weights appear under every HF name that shares them)."""
    return family_of(model).hf_adapter(model.config).to_hf_state(model.config, model.state_dict())


def from_hf_state(config: Any, hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An HF state dict under our names and layouts, for a model built from `config`."""
    return family_of(config).hf_adapter(config).from_hf_state(config, hf_state)


def hf_model_class(model_type: str) -> type:
    import transformers as tf

    return getattr(tf, hf_adapter_for_type(model_type).hf_class)


def to_hf(model: nn.Module, eos_id: int | None = None):
    """A `transformers` model holding exactly our weights (float32, eval mode)."""
    adapter = family_of(model).hf_adapter(model.config)
    hf = hf_model_class(adapter.model_type)(adapter.hf_config(model.config, eos_id))
    missing, unexpected = hf.load_state_dict(adapter.to_hf_state(model.config, model.state_dict()), strict=False)
    missing = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias"))]
    if missing or unexpected:
        raise CheckpointError(f"HF export left tensors unset {missing} or unused {unexpected}")
    return hf.eval()


def from_hf(hf_model: nn.Module) -> nn.Module:
    """Our model with exactly the weights of a `transformers` model."""
    config = config_from_hf(hf_model.config)
    model = build_model(config)
    model.load_state_dict(from_hf_state(config, hf_model.state_dict()))
    return model.eval()
