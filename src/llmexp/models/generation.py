"""The one generation loop of llmexp (used by generate, sample callbacks, eval and serve): KV cache, batched prompts
with left padding, greedy or sampled decoding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SamplingConfig:
    """How the next token is chosen. temperature 0 means greedy."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 or null, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] or null, got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already present (`seen` is a [B, V] boolean)."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def choose_next(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token ids [B] from last-position logits [B, V]."""
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens before it already reach top_p; the most likely token always stays.
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= cfg.top_p
        logits = logits.masked_fill(drop_sorted.scatter(1, order, drop_sorted), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths as one [B, T] tensor padded on the left, plus the mask of real tokens."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long, device=device)
            mask[row, width - len(prompt) :] = 1
    return ids, mask


@torch.inference_mode()
def generate(
    model: nn.Module,
    prompts: list[list[int]],
    cfg: SamplingConfig,
    eos_id: int,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New token ids for each prompt (prompt excluded), stopping at EOS (not included) or max_new_tokens.

    Prompts longer than the context are cut from the left so that the answer always fits.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    context = model.config.max_seq_len
    max_new = min(cfg.max_new_tokens, context - 1)
    prompts = [p[-(context - max_new) :] for p in prompts]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ids, mask = left_pad(prompts, pad_id=eos_id, device=device)
    batch = ids.shape[0]
    seen = torch.zeros(batch, model.config.vocab_size, dtype=torch.bool, device=device)
    seen.scatter_(1, ids, mask.bool())
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    cache = model.new_cache(batch, ids.shape[1] + max_new) if use_cache else None
    step_ids, step_mask = ids, mask
    for _ in range(max_new):
        if cache is not None:
            logits = model(step_ids, attention_mask=step_mask, cache=cache)[:, -1]
        else:
            logits = model(ids, attention_mask=mask)[:, -1]
        if cfg.repetition_penalty != 1.0:
            logits = apply_repetition_penalty(logits, seen, cfg.repetition_penalty)
        next_ids = choose_next(logits, cfg, generator)
        for row in range(batch):
            if finished[row]:
                continue
            token = int(next_ids[row])
            if cfg.stop_at_eos and token == eos_id:
                finished[row] = True
            else:
                outputs[row].append(token)
        if bool(finished.all()):
            break
        seen[torch.arange(batch, device=device), next_ids] = True
        step_ids = next_ids.unsqueeze(1)
        step_mask = torch.ones_like(step_ids)
        ids = torch.cat([ids, step_ids], dim=1)
        mask = torch.cat([mask, step_mask], dim=1)
    model.train(was_training)
    return outputs
