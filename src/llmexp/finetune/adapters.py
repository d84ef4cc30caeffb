"""Which weights a fine-tune trains (conf/finetune/): all of them, all but frozen lower layers, or LoRA adapters.

LoRA comes from `peft` (chosen over our own: it is maintained, handles dropout, merging and unmerging, and works on
any `nn.Linear` of a plain module, so our GPT needs no changes). An adapter changes the model in place; `merged`
returns a plain copy with the adapters folded into the base weights, which is what exports and servers load.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from llmexp.errors import ConfigError
from llmexp.models.spec import family_of


class Adapter:
    """Full fine-tuning: every parameter trains; the model exports as it is."""

    name = "none"
    adds_layers = False  # True when checkpoints hold adapter layers, so exports need `merged`

    def apply(self, model: nn.Module) -> nn.Module:
        for param in model.parameters():
            param.requires_grad_(True)
        return model

    def merged(self, model: nn.Module) -> nn.Module:
        return model

    def describe(self) -> dict:
        return {"name": self.name}

    def fresh(self) -> Adapter:
        """An adapter with the same settings, not yet applied (for a second, unsharded copy of the model)."""
        settings = {k: v for k, v in self.describe().items() if k != "name"}
        return type(self)(**settings)


class Freeze(Adapter):
    """Train the upper layers only: the embeddings and the lowest `layers` blocks keep their pretrained values."""

    name = "freeze"

    def __init__(self, layers: int = 0, embeddings: bool = True):
        if layers < 0:
            raise ConfigError(f"finetune.layers={layers}: the number of frozen lower blocks must be >= 0")
        self.layers, self.embeddings = layers, embeddings

    def apply(self, model: nn.Module) -> nn.Module:
        spec = family_of(model)
        blocks = [m for m in model.modules() if isinstance(m, spec.block_classes)]  # input side first
        if self.layers > len(blocks):
            raise ConfigError(f"finetune.layers={self.layers}: the model has only {len(blocks)} blocks")
        super().apply(model)
        frozen: list[nn.Module] = list(blocks[: self.layers])
        if self.embeddings:
            frozen += [getattr(model, n) for n in spec.embedding_modules if getattr(model, n, None) is not None]
        for module in frozen:
            module.requires_grad_(False)
        return model

    def describe(self) -> dict:
        return {"name": self.name, "layers": self.layers, "embeddings": self.embeddings}


class LoRA(Adapter):
    """Low-rank adapters on the named linear layers (peft); only the adapters train, the base stays frozen."""

    name = "lora"
    adds_layers = True

    def __init__(
        self, r: int = 8, alpha: float = 16.0, dropout: float = 0.0, target_modules: Sequence[str] | None = None
    ):
        if r < 1:
            raise ConfigError(f"finetune.r={r}: the LoRA rank must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"finetune.dropout={dropout}: must be in [0, 1)")
        self.r, self.alpha, self.dropout = r, alpha, dropout
        self.target_modules = list(target_modules) if target_modules is not None else None  # None: the family's

    def apply(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig
        from peft.tuners.lora import LoraModel

        if self.target_modules is None:
            self.target_modules = list(family_of(model).lora_targets)
        linear_names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
        unknown = sorted(set(self.target_modules) - linear_names)
        if unknown or not self.target_modules:
            raise ConfigError(
                f"finetune.target_modules: {unknown or '[]'} matches no linear layer; "
                f"choose from {sorted(linear_names)}"
            )
        config = LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.target_modules
        )
        # LoraModel swaps the target layers in place and marks only the adapters trainable; `model` stays the root.
        LoraModel(model, config, "default")
        return model

    def merged(self, model: nn.Module) -> nn.Module:
        """A copy of `model` (adapted by this or an equal LoRA) with W + (alpha / r) B A in every adapted layer and
        the adapters removed: a plain model again."""
        from peft.tuners.lora import LoraLayer

        plain = copy.deepcopy(model)
        adapted = [(name, m) for name, m in plain.named_modules() if isinstance(m, LoraLayer)]
        if not adapted:
            raise ConfigError("finetune=lora: the model has no LoRA layers to merge")
        for name, layer in adapted:
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(plain.get_submodule(parent_name) if parent_name else plain, child, layer.get_base_layer())
        return plain

    def describe(self) -> dict:
        return {
            "name": self.name,
            "r": self.r,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "target_modules": self.target_modules,
        }


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [name for name, param in model.named_parameters() if param.requires_grad]
