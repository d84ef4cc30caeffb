"""Plain nn.Module models and the registry that rebuilds them from a saved config dict."""

from __future__ import annotations

from typing import Any

from llmexp.models.gpt import GPT, GPTConfig

# Only these config classes may be rebuilt from a checkpoint: loading never imports a name stored in a file.
MODEL_CONFIGS: dict[str, type] = {"gpt": GPTConfig}


def config_from_dict(data: dict[str, Any]):
    """Rebuild a model config saved by `config.to_dict()`."""
    fields = dict(data)
    family = fields.pop("family", "gpt")
    if family not in MODEL_CONFIGS:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[family](**fields)


__all__ = ["GPT", "MODEL_CONFIGS", "GPTConfig", "config_from_dict"]
