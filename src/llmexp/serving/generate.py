"""`llmexp-generate`: text in, text out, from a checkpoint through the one decoding loop."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from llmexp.artifacts.checkpoint import read_checkpoint
from llmexp.artifacts.inference import model_from_checkpoint, pick_device, tokenizer_from_checkpoint
from llmexp.models.generation import SamplingConfig, cut_at_stop, generate
from llmexp.models.spec import family_of
from llmexp.serving.server import check_servable
from llmexp.tokenizer import ChatTemplate


def generate_text(cfg: DictConfig) -> list[str]:
    """Continue `cfg.prompt` `cfg.num_samples` times (an encoder-decoder answers it); print and return the texts."""
    device = pick_device(cfg.device)
    checkpoint = read_checkpoint(cfg.ckpt_path)
    check_servable(cfg.ckpt_path, checkpoint, "llmexp-generate")
    model = model_from_checkpoint(checkpoint).to(device).eval()
    tokenizer, metadata = tokenizer_from_checkpoint(checkpoint), checkpoint["llmexp"]
    del checkpoint
    sampling = SamplingConfig(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        repetition_penalty=cfg.repetition_penalty,
    )
    prompt, stops = cfg.prompt, []
    if cfg.get("chat"):  # the format the model was tuned on; the answer alone is printed
        template = ChatTemplate.from_dict(metadata.get("chat_template"))
        prompt, stops = template.render_prompt([{"role": "user", "content": cfg.prompt}]), list(template.stop)
    prompt_ids = tokenizer.encode(prompt) or [tokenizer.eos_id]
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    outputs = generate(
        model, [prompt_ids] * cfg.num_samples, sampling, tokenizer.eos_id, generator=generator,
        stop_strings=stops, decode_text=tokenizer.decode,
    )  # fmt: skip
    lead = "" if family_of(model).encoder_decoder or cfg.get("chat") else cfg.prompt
    texts = [lead + cut_at_stop(tokenizer.decode(ids), stops) for ids in outputs]
    for index, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {index + 1} ---")
        print(text)
    return texts
