"""`llmexp-generate`: text in, text out, from a checkpoint through the one decoding loop."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from llmexp.artifacts.inference import load_for_inference, pick_device
from llmexp.models.generation import SamplingConfig, generate


def generate_text(cfg: DictConfig) -> list[str]:
    """Continue `cfg.prompt` `cfg.num_samples` times; print and return the full texts."""
    device = pick_device(cfg.device)
    model, tokenizer, _ = load_for_inference(cfg.ckpt_path, device)
    sampling = SamplingConfig(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        repetition_penalty=cfg.repetition_penalty,
    )
    prompt_ids = tokenizer.encode(cfg.prompt) or [tokenizer.eos_id]
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    outputs = generate(model, [prompt_ids] * cfg.num_samples, sampling, tokenizer.eos_id, generator=generator)
    texts = [cfg.prompt + tokenizer.decode(ids) for ids in outputs]
    for index, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {index + 1} ---")
        print(text)
    return texts
