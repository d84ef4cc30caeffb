"""What a model family is, in one place: every part of llmexp that must know something about a family (what to shard,
whether it generates, how it reads a prompt, which objectives it trains with, how it maps to `transformers`) asks
its FamilySpec here, never `isinstance` or a name string. A new family is one module plus one entry in FAMILIES.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from llmexp.errors import CheckpointError, ConfigError
from llmexp.models.bert import Bert, BertConfig, BertLayer
from llmexp.models.gpt import GPT, Block, GPTConfig
from llmexp.models.hf_adapters import BertAdapter, GPT2Adapter, HFAdapter, LlamaAdapter, T5Adapter
from llmexp.models.t5 import T5, T5Block, T5Config


@dataclass(frozen=True)
class FamilySpec:
    """The facts about one model family that the rest of llmexp needs."""

    name: str  # the `family` stored in checkpoints
    config_class: type
    model_class: type[nn.Module]
    # The repeated blocks: each one is an FSDP unit (fsdp auto-wrap, fsdp2 fully_shard) and an activation
    # checkpointing unit.
    block_classes: tuple[type[nn.Module], ...]
    # The training objectives (conf/task options) this family supports; anything else is refused before any work.
    objectives: tuple[str, ...]
    can_generate: bool  # generate, serve, the samples callback, generation evals
    encoder_decoder: bool  # the prompt goes to an encoder; the answer is decoded from a start token
    causal: bool  # decoder-only: next-token log-likelihoods score text (llmexp-eval), the last token sums up a text
    embedding_modules: tuple[str, ...]  # frozen by finetune=freeze with embeddings=true
    head_modules: tuple[str, ...]  # not used by `hidden_states`: a classifier drops them (DDP needs no unused weights)
    lora_targets: tuple[str, ...]  # the linear layers LoRA adapts unless finetune.target_modules says otherwise
    hf_adapters: tuple[HFAdapter, ...]  # transformers architectures that hold this family exactly, preferred first

    def knobs(self) -> list[str]:
        """The config fields a model YAML sets (all but `vocab_size`, which comes from the tokenizer)."""
        return [f.name for f in fields(self.config_class) if f.name != "vocab_size"]

    def hf_adapter(self, config: Any) -> HFAdapter:
        """The first transformers architecture that holds `config` exactly (ConfigError naming why none does)."""
        reasons = []
        for adapter in self.hf_adapters:
            reason = adapter.mismatch(config)
            if reason is None:
                return adapter
            reasons.append(reason)
        raise ConfigError(f"model family {self.name!r}: no transformers architecture fits ({'; '.join(reasons)})")


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec(
            name="gpt",
            config_class=GPTConfig,
            model_class=GPT,
            block_classes=(Block,),
            objectives=("causal_lm", "finetune_lm", "sft", "dpo", "classification"),
            can_generate=True,
            encoder_decoder=False,
            causal=True,
            embedding_modules=("wte", "wpe"),
            head_modules=("lm_head",),
            lora_targets=("qkv", "proj"),
            hf_adapters=(GPT2Adapter(), LlamaAdapter()),
        ),
        FamilySpec(
            name="bert",
            config_class=BertConfig,
            model_class=Bert,
            block_classes=(BertLayer,),
            objectives=("masked_lm", "classification"),
            can_generate=False,
            encoder_decoder=False,
            causal=False,
            embedding_modules=("wte", "wpe", "wtt", "norm_emb"),
            head_modules=("head_dense", "head_norm", "lm_head"),
            lora_targets=("q", "v"),
            hf_adapters=(BertAdapter(),),
        ),
        FamilySpec(
            name="t5",
            config_class=T5Config,
            model_class=T5,
            block_classes=(T5Block,),
            objectives=("seq2seq", "classification"),
            can_generate=True,
            encoder_decoder=True,
            causal=False,
            embedding_modules=("shared",),
            head_modules=("decoder", "decoder_bias", "decoder_norm", "lm_head"),
            lora_targets=("q", "v"),
            hf_adapters=(T5Adapter(),),
        ),
    )
}


def family_of(thing: Any) -> FamilySpec:
    """The family of a model, a model config, their classes, or a family name."""
    for spec in FAMILIES.values():
        if thing in (spec.name, spec.config_class, spec.model_class):
            return spec
        if isinstance(thing, spec.config_class | spec.model_class):
            return spec
    config = getattr(thing, "config", None)
    if config is not None and config is not thing:
        return family_of(config)
    raise ConfigError(f"{type(thing).__name__}: not a model of a known family ({', '.join(FAMILIES)})")


def saved_family(model_config: dict[str, Any]) -> FamilySpec:
    """The family of a model config saved in a checkpoint (checkpoints without a family are GPTs)."""
    return family_of(model_config.get("family", "gpt"))


def hf_adapter_for_type(model_type: str) -> HFAdapter:
    """The adapter that reads a transformers model of `model_type` (gpt2, llama, bert, t5)."""
    adapters = {a.model_type: a for spec in FAMILIES.values() for a in spec.hf_adapters}
    if model_type not in adapters:
        raise CheckpointError(f"model_type={model_type!r} cannot be imported; supported: {sorted(adapters)}")
    return adapters[model_type]


def config_from_dict(data: dict[str, Any]) -> Any:
    """Rebuild a model config saved by `config.to_dict()` (checkpoints without a family are GPTs). Only the config
    classes of FAMILIES can be rebuilt: loading never imports a name stored in a file."""
    values = dict(data)
    name = values.pop("family", "gpt")
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name].config_class(**values)


def build_model(config: Any) -> nn.Module:
    """The plain model of a config (vocab_size must be set)."""
    if getattr(config, "vocab_size", 0) <= 0:
        raise ConfigError(f"{type(config).__name__}.vocab_size must be set (it comes from the tokenizer)")
    return family_of(config).model_class(config)
