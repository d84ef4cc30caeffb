"""The one generation loop of llmexp (used by generate, sample callbacks, eval and serve): KV cache, batched prompts
with left padding, greedy or sampled decoding."""

from __future__ import annotations

from collections.abc import Callable
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


class _Outputs:
    """New tokens per row, and which rows are done (EOS, a stop sequence of ids, or a stop string)."""

    def __init__(self, batch, cfg, eos_id, stop_sequences, stop_strings, decode, device):
        self.tokens: list[list[int]] = [[] for _ in range(batch)]
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self.cfg, self.eos_id = cfg, eos_id
        self.stop_sequences = [list(s) for s in stop_sequences or [] if s]
        self.stop_strings = [s for s in stop_strings or [] if s]
        if self.stop_strings and decode is None:
            raise ValueError("stop_strings need a decode function (token ids -> text)")
        self.decode = decode

    def add(self, next_ids: torch.Tensor) -> bool:
        """Append one token per unfinished row; True once every row is done."""
        for row, token in enumerate(next_ids.tolist()):
            if self.finished[row]:
                continue
            if self.cfg.stop_at_eos and token == self.eos_id:
                self.finished[row] = True
                continue
            out = self.tokens[row]
            out.append(token)
            for seq in self.stop_sequences:
                if out[-len(seq) :] == seq:
                    del out[-len(seq) :]
                    self.finished[row] = True
                    break
            if self.stop_strings and not self.finished[row]:
                text = self.decode(out)
                self.finished[row] = any(s in text for s in self.stop_strings)
        return bool(self.finished.all())


def cut_at_stop(text: str, stop_strings: list[str]) -> str:
    """The text before the first stop string (generation keeps the tokens that complete one)."""
    cuts = [text.index(s) for s in stop_strings if s and s in text]
    return text[: min(cuts)] if cuts else text


@torch.inference_mode()
def generate(
    model: nn.Module,
    prompts: list[list[int]],
    cfg: SamplingConfig,
    eos_id: int,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    stop_sequences: list[list[int]] | None = None,
    stop_strings: list[str] | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> list[list[int]]:
    """New token ids for each prompt (prompt excluded), stopping at EOS (not included), at a stop sequence of ids
    (not included), once the decoded text holds a stop string (tokens kept; see `cut_at_stop`), or at
    max_new_tokens. Decoder-only models continue the prompt; encoder-decoder models (T5) read it with the encoder.

    Prompts longer than the context are cut from the left so that the answer always fits.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    family = getattr(model.config, "family", "gpt")
    if family == "bert":
        raise ValueError("model family 'bert' is an encoder with a masked-LM head; it does not generate text")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs = _Outputs(len(prompts), cfg, eos_id, stop_sequences, stop_strings, decode, device)
    try:
        if getattr(model, "is_encoder_decoder", False):
            _seq2seq_loop(model, prompts, cfg, outputs, generator, use_cache, device)
        else:
            _decoder_loop(model, prompts, cfg, outputs, generator, use_cache, device)
    finally:
        model.train(was_training)
    return outputs.tokens


def _next_token(logits, seen, cfg, generator) -> torch.Tensor:
    if cfg.repetition_penalty == 1.0:
        return choose_next(logits, cfg, generator)
    next_ids = choose_next(apply_repetition_penalty(logits, seen, cfg.repetition_penalty), cfg, generator)
    seen[torch.arange(len(next_ids), device=seen.device), next_ids] = True
    return next_ids


def _decoder_loop(model, prompts, cfg, outputs, generator, use_cache, device) -> None:
    context = model.config.max_seq_len
    max_new = min(cfg.max_new_tokens, context - 1)
    prompts = [p[-(context - max_new) :] for p in prompts]
    ids, mask = left_pad(prompts, pad_id=outputs.eos_id, device=device)
    batch = ids.shape[0]
    seen = torch.zeros(batch, model.config.vocab_size, dtype=torch.bool, device=device)
    seen.scatter_(1, ids, mask.bool())
    cache = model.new_cache(batch, ids.shape[1] + max_new) if use_cache else None
    # Without padding no mask is needed (the fast causal path); with a cache, the padding of the prompt stays
    # recorded in it, so the steps after the prompt need no mask either.
    padded = not bool(mask.all())
    step_ids, step_mask = ids, mask if padded else None
    for _ in range(max_new):
        if cache is not None:
            logits = model(step_ids, attention_mask=step_mask, cache=cache)[:, -1]
        else:
            logits = model(ids, attention_mask=mask if padded else None)[:, -1]
        next_ids = _next_token(logits, seen, cfg, generator)
        if outputs.add(next_ids):
            break
        step_ids, step_mask = next_ids.unsqueeze(1), None
        ids = torch.cat([ids, step_ids], dim=1)
        mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)


def _seq2seq_loop(model, prompts, cfg, outputs, generator, use_cache, device) -> None:
    """Encode the (left-padded) prompts once; decode from the start token (T5: the pad id) with a KV cache."""
    prompts = [p[-model.config.max_seq_len :] for p in prompts]
    start_id = model.config.pad_token_id
    ids, mask = left_pad(prompts, pad_id=start_id, device=device)
    batch = ids.shape[0]
    memory = model.encode(ids, mask)
    cache = model.new_cache(memory, cfg.max_new_tokens + 1) if use_cache else None
    decoded = torch.full((batch, 1), start_id, dtype=torch.long, device=device)
    seen = torch.zeros(batch, model.config.vocab_size, dtype=torch.bool, device=device)
    step_ids = decoded
    for _ in range(cfg.max_new_tokens):
        logits = model.decode(step_ids if cache is not None else decoded, memory, mask, cache=cache)[:, -1]
        next_ids = _next_token(logits, seen, cfg, generator)
        if outputs.add(next_ids):
            break
        step_ids = next_ids.unsqueeze(1)
        decoded = torch.cat([decoded, step_ids], dim=1)
