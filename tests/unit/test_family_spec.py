"""The FamilySpec registry is the one place that knows a family: every family's configs expose every knob, choices
are refused by name before any work, and the places that need a family fact get it from the spec."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import get_class

from llmexp.artifacts.checkpoint import INTEGRITY_KEY, read_checkpoint
from llmexp.artifacts.inference import save_inference_checkpoint
from llmexp.config import config_dir
from llmexp.config.overrides import validate_overrides
from llmexp.errors import CheckpointError, ConfigError
from llmexp.finetune.adapters import Freeze, LoRA
from llmexp.models.spec import FAMILIES, build_model, config_from_dict, family_of
from llmexp.tokenizer import Tokenizer

CONF = config_dir()
ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_OPTIONS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def option_family(option: str):
    return family_of(get_class(yaml.safe_load((CONF / "model" / f"{option}.yaml").read_text())["_target_"]))


@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_every_model_yaml_shows_every_knob_of_its_family(option):
    keys = set(yaml.safe_load((CONF / "model" / f"{option}.yaml").read_text())) - {"_target_"}
    assert keys == set(option_family(option).knobs())


@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_every_knob_can_be_set_on_the_command_line(option):
    """`model.<knob>=<its value>` is accepted for every knob (no `+` needed), e.g. model.bias=false."""
    values = yaml.safe_load((CONF / "model" / f"{option}.yaml").read_text())
    overrides = [f"model={option}"]
    for knob in option_family(option).knobs():
        value = values[knob]
        overrides.append(
            f"model.{knob}={'null' if value is None else str(value).lower() if isinstance(value, bool) else value}"
        )
    validate_overrides(CONF, "train", overrides)


def literal_knobs() -> list[tuple[str, str, tuple]]:
    found = []
    for name, spec in FAMILIES.items():
        for field, hint in typing.get_type_hints(spec.config_class).items():
            if typing.get_origin(hint) is typing.Literal:
                found.append((name, field, typing.get_args(hint)))
    return found


@pytest.mark.parametrize(("family", "field", "choices"), literal_knobs())
def test_a_bad_choice_is_refused_by_name_before_any_work(family, field, choices):
    option = next(o for o in MODEL_OPTIONS if option_family(o).name == family)
    typo = choices[0][:-1]
    with pytest.raises(ConfigError) as info:
        validate_overrides(CONF, "train", [f"model={option}", f"model.{field}={typo}"])
    message = str(info.value)
    assert message.startswith(f"model.{field}={typo}: not one of {', '.join(choices)}")
    assert f"did you mean '{choices[0]}'?" in message and "\n" not in message


def test_the_configs_refuse_a_bad_choice_built_in_code_too():
    with pytest.raises(ConfigError, match=r"model.pos_emb='rop': not one of learned, rope, sinusoidal"):
        FAMILIES["gpt"].config_class(pos_emb="rop")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_facts_match_the_modules(family):
    spec = FAMILIES[family]
    config = spec.config_class(vocab_size=40)
    model = build_model(config)
    assert family_of(model) is family_of(config) is family_of(family) is spec
    assert config_from_dict(config.to_dict()) == config
    blocks = [m for m in model.modules() if isinstance(m, spec.block_classes)]
    assert len(blocks) >= 2  # sharding and checkpointing units exist
    assert all(hasattr(model, name) for name in (*spec.embedding_modules, *spec.head_modules))
    linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(spec.lora_targets) <= linear
    assert spec.hf_adapter(config).model_type


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lora_and_freeze_work_on_every_family_with_its_defaults(family):
    spec = FAMILIES[family]
    model = build_model(spec.config_class(vocab_size=40))
    LoRA(r=2).apply(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    merged = LoRA(r=2).merged(model)
    assert not any(".lora_" in n for n in merged.state_dict())
    frozen = Freeze(layers=1).apply(build_model(spec.config_class(vocab_size=40)))
    first_block = next(m for m in frozen.modules() if isinstance(m, spec.block_classes))
    assert not any(p.requires_grad for p in first_block.parameters())
    assert not any(p.requires_grad for n in spec.embedding_modules for p in getattr(frozen, n).parameters())


def test_merged_weights_are_written_atomically_with_a_digest(tmp_path):
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    model = build_model(FAMILIES["gpt"].config_class(vocab_size=tokenizer.vocab_size, n_layer=1, n_embd=16, n_head=2))
    path = save_inference_checkpoint(tmp_path / "merged.ckpt", model, tokenizer, {"task": "sft"})
    assert [p.name for p in tmp_path.iterdir()] == ["merged.ckpt"]  # no temporary file left
    assert INTEGRITY_KEY in torch.load(path, weights_only=True)
    read_checkpoint(path)
    data = bytearray(path.read_bytes())
    offset = data.find(b"data/0") + 200  # inside the first tensor's bytes
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the digest"):
        read_checkpoint(path)
