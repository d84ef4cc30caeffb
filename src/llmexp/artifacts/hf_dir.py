"""Hugging Face model directories: write one (`llmexp-export`: config.json, model.safetensors, tokenizer files,
generation_config.json, chat template) and read one (`init_from=<dir>`), through the key maps of `models.hf`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmexp.artifacts.checkpoint import read_checkpoint
from llmexp.artifacts.inference import model_from_checkpoint, refuse_unmerged, tokenizer_from_checkpoint
from llmexp.errors import CheckpointError
from llmexp.models.generation import SamplingConfig
from llmexp.models.hf import from_hf, hf_model_class, to_hf
from llmexp.models.spec import saved_family
from llmexp.tokenizer import EOS_TOKEN, ChatTemplate, Tokenizer


def save_hf_dir(model: nn.Module, tokenizer: Tokenizer | None, out: str | Path) -> Path:
    """Write a directory `transformers` loads with from_pretrained: config.json, model.safetensors, tokenizer."""
    out = Path(out)
    eos_id = tokenizer.eos_id if tokenizer is not None else None
    to_hf(model, eos_id).save_pretrained(out)
    if tokenizer is not None:
        hf_tokenizer(tokenizer, model.config.max_seq_len).save_pretrained(out)
    readable(out)
    return out


def readable(directory: Path) -> None:
    """Files as `open()` would create them (0644 under the usual umask): safetensors writes its file 0600, which
    breaks a model directory shared with a serving user or a team."""
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def hf_tokenizer(tokenizer: Tokenizer, model_max_length: int | None = None):
    """Our tokenizer as a PreTrainedTokenizerFast with its special tokens named (pad and mask when present) and the
    model's context as `model_max_length` (transformers' default is 1e30, "no limit")."""
    from transformers import PreTrainedTokenizerFast

    vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
    special = {"eos_token": tokenizer.eos_token, "bos_token": tokenizer.eos_token}
    special["pad_token"] = "<pad>" if "<pad>" in vocab else tokenizer.eos_token
    if "<mask>" in vocab:
        special["mask_token"] = "<mask>"
    limit = {"model_max_length": model_max_length} if model_max_length else {}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend, **special, **limit)


def load_hf_dir(path: str | Path, pickled_weights: bool = False) -> tuple[nn.Module, Tokenizer | None]:
    """(our model, its tokenizer if the directory has a tokenizer.json) from a local `transformers` directory.
    Weights are read from safetensors only, unless `pickled_weights` allows pytorch_model.bin (a pickle)."""
    import transformers as tf

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a transformers model directory (no config.json)")
    if not pickled_weights and not any(path.glob("*.safetensors")):
        raise CheckpointError(
            f"{path}: no *.safetensors weights; llmexp reads transformers weights as safetensors only (a pickled "
            "pytorch_model.bin can run code when loaded): save the model again with save_pretrained(dir)"
        )
    hf_cfg = tf.AutoConfig.from_pretrained(path, local_files_only=True)
    try:
        hf_class = hf_model_class(hf_cfg.model_type)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    hf_model = hf_class.from_pretrained(
        path, local_files_only=True, dtype=torch.float32, use_safetensors=not pickled_weights
    )
    model = from_hf(hf_model)
    tokenizer = None
    if (path / "tokenizer.json").is_file():
        tokenizer = Tokenizer.load(path / "tokenizer.json", eos_token=_eos_token(path))
    return model, tokenizer


def _eos_token(path: Path) -> str:
    config = path / "tokenizer_config.json"
    if config.is_file():
        eos = json.loads(config.read_text()).get("eos_token")
        if isinstance(eos, dict):
            eos = eos.get("content")
        if isinstance(eos, str):
            return eos
    return EOS_TOKEN


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


def chat_template_jinja(template: ChatTemplate) -> str:
    """Our chat template as the Jinja template `transformers` keeps in tokenizer_config.json (apply_chat_template)."""
    parts = []
    for index, role in enumerate(("system", "user", "assistant")):
        before, after = getattr(template, role).split("{content}", 1)
        keyword = "if" if index == 0 else "elif"
        parts.append(f"{{% {keyword} message['role'] == '{role}' %}}{before}{{{{ message['content'] }}}}{after}")
    body = "".join(parts) + "{% endif %}"
    prompt = f"{{% if add_generation_prompt %}}{template.generation_prompt}{{% endif %}}"
    return f"{{% for message in messages %}}{body}{{% endfor %}}{prompt}"


def finish_export(directory: str | Path, metadata: dict[str, Any], sampling: SamplingConfig | None = None) -> None:
    """Add what a fine-tuned export needs beyond weights and tokenizer: generation_config.json, and for SFT models
    the chat template in tokenizer_config.json (so `apply_chat_template` renders prompts as in training)."""
    directory = Path(directory)
    tokenizer = Tokenizer.from_str(metadata["tokenizer"])
    write_generation_config(directory, tokenizer, sampling)
    tokenizer_config = directory / "tokenizer_config.json"
    if metadata.get("chat_template") and tokenizer_config.is_file():
        config = json.loads(tokenizer_config.read_text())
        config["chat_template"] = chat_template_jinja(ChatTemplate.from_dict(metadata["chat_template"]))
        tokenizer_config.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def export_checkpoint(ckpt_path: str | Path, out: str | Path, sampling: SamplingConfig | None = None) -> Path:
    """`llmexp-export`: an llmexp checkpoint as a `transformers` directory (config.json, model.safetensors, tokenizer
    files) plus, for families that generate, generation_config.json and the chat template of SFT models. A LoRA
    checkpoint is refused in favour of its merged weights. The directory is written beside `out` under a temporary
    name and renamed when complete, so an interrupted export never leaves a half-written model behind."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"out={out} exists and is not empty; choose a new directory")
    checkpoint = read_checkpoint(ckpt_path)
    refuse_unmerged(ckpt_path, checkpoint)
    metadata = checkpoint["llmexp"]
    if metadata.get("task") == "classification":
        raise CheckpointError(f"ckpt_path={ckpt_path}: a classification checkpoint; export writes language models")
    model, tokenizer = model_from_checkpoint(checkpoint).eval(), tokenizer_from_checkpoint(checkpoint)
    del checkpoint
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        save_hf_dir(model, tokenizer, partial)
        if saved_family(metadata["model_config"]).can_generate:
            finish_export(partial, metadata, sampling)
        if out.exists():
            out.rmdir()  # an empty folder the user made for it
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out
