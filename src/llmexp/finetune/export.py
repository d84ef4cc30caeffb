"""Write a model as an inference checkpoint: the format `load_for_inference` (generate, serve, export) reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmexp.data.chat import ChatTemplate
from llmexp.data.tokenizer import Tokenizer
from llmexp.errors import CheckpointError
from llmexp.models.generation import SamplingConfig
from llmexp.training.checkpoint import read_checkpoint


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


def refuse_unmerged(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """A LoRA run's last.ckpt holds adapter layers that no plain model has: point to its merged weights."""
    if any(".lora_A." in key for key in checkpoint["state_dict"]):
        merged = Path(path).with_name("merged.ckpt")
        raise CheckpointError(f"ckpt_path={path}: holds LoRA adapters; use the merged weights, {merged}")


def export_with_generation_config(ckpt_path: str | Path, out: str | Path, sampling: SamplingConfig) -> Path:
    """`llmexp-export`: the transformers directory (models.hf) plus generation_config.json and, for SFT models, the
    chat template; a LoRA checkpoint is refused in favour of its merged weights."""
    from llmexp.models.hf import export_checkpoint

    checkpoint = read_checkpoint(ckpt_path)
    refuse_unmerged(ckpt_path, checkpoint)
    metadata = checkpoint["llmexp"]
    if metadata.get("task") == "classification":
        raise CheckpointError(f"ckpt_path={ckpt_path}: a classification checkpoint; export writes language models")
    del checkpoint
    out = export_checkpoint(ckpt_path, out)
    if metadata["model_config"].get("family", "gpt") != "bert":  # an encoder with a masked-LM head does not generate
        finish_export(out, metadata, sampling)
    return out
