"""Plain nn.Module models and the registry that rebuilds them from a saved config dict."""

from __future__ import annotations

from typing import Any

from llmexp.models.bert import Bert, BertConfig
from llmexp.models.gpt import GPT, GPTConfig
from llmexp.models.t5 import T5, T5Config

# Only these config classes may be rebuilt from a checkpoint: loading never imports a name stored in a file.
MODEL_CONFIGS: dict[str, type] = {"gpt": GPTConfig, "bert": BertConfig, "t5": T5Config}


def config_from_dict(data: dict[str, Any]):
    """Rebuild a model config saved by `config.to_dict()` (checkpoints without a family are GPTs)."""
    fields = dict(data)
    family = fields.pop("family", "gpt")
    if family not in MODEL_CONFIGS:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[family](**fields)


__all__ = ["GPT", "MODEL_CONFIGS", "T5", "Bert", "BertConfig", "GPTConfig", "T5Config", "config_from_dict"]
