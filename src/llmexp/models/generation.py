"""The one decoding loop of llmexp, used by generate, the samples callback, evaluation and the server.

`decode` continues a batch of rows, each with its own sampling settings, length limit and random generator, with a
KV cache and left padding; decoder-only families continue the prompt, encoder-decoder families (T5) read it with
the encoder and decode from the start token. A per-token hook sees every new token as it is chosen (streaming, stop
strings) and can end its row; a cancellation check ends a row whose client has gone. `generate` is the plain
"prompts in, token ids out" call on top of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from llmexp.config.ranges import SAMPLING, allows, describe
from llmexp.errors import ConfigError
from llmexp.models.spec import family_of


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
        for name, declared in SAMPLING.items():
            if not allows(declared, getattr(self, name)):
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be {describe(declared)}")


@dataclass
class DecodeRow:
    """One sequence to continue."""

    prompt_ids: list[int]
    sampling: SamplingConfig
    generator: torch.Generator | None = None  # rows sharing a generator (and settings) are sampled together


@dataclass
class RowResult:
    tokens: list[int]  # new tokens (EOS not included)
    finish_reason: str = "length"  # stop (EOS or the hook ended it) | length | cancelled


# (row, its tokens so far) -> True to end that row now; called once per new token.
TokenHook = Callable[[int, list[int]], bool | None]
FinishHook = Callable[[int, str], None]  # (row, finish reason), as soon as a row ends
CancelCheck = Callable[[int], bool]


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already present (`seen` is a [B, V] boolean)."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def choose_next(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token ids [B] from last-position logits [B, V], numerically safe row by row: logits are shifted so that
    their largest is 0 before dividing by the temperature (a temperature of 1e-300 gives 0 and -inf, so the most
    likely token, never inf - inf), and a row that still cannot be sampled (non-finite logits from the model) takes
    its most likely token without touching the other rows."""
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    raw = logits.float()
    # A temperature below float32's smallest normal number would round to 0 (0 / 0); any one that small is greedy.
    temperature = max(cfg.temperature, torch.finfo(torch.float32).tiny)
    logits = (raw - raw.amax(dim=-1, keepdim=True)) / temperature
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
    usable = torch.isfinite(probs).all(dim=-1)
    if bool(usable.all()):
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
    chosen = raw.nan_to_num(nan=float("-inf")).argmax(dim=-1)
    if bool(usable.any()):
        chosen[usable] = torch.multinomial(probs[usable], num_samples=1, generator=generator).squeeze(-1)
    return chosen


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


def room(model: nn.Module, prompt_length: int) -> int:
    """How many new tokens fit after a prompt of this length: decoder-only models share one context between prompt
    and answer; an encoder-decoder reads up to max_seq_len tokens and writes up to max_seq_len more."""
    context = int(model.config.max_seq_len)
    if family_of(model).encoder_decoder:
        return context if prompt_length <= context else 0
    return max(0, context - prompt_length)


def cut_at_stop(text: str, stop_strings: list[str]) -> str:
    """The text before the first stop string (generation keeps the tokens that complete one)."""
    cuts = [text.index(s) for s in stop_strings if s and s in text]
    return text[: min(cuts)] if cuts else text


class _DecoderOnly:
    """Steps of a decoder-only model: the (left-padded) prompt first, then one token per step."""

    def __init__(self, model, prompts, limits, pad_id, use_cache, device):
        self.model = model
        self.ids, self.mask = left_pad(prompts, pad_id, device)
        self.padded = not bool(self.mask.all())
        self.cache = model.new_cache(len(prompts), self.ids.shape[1] + max(limits)) if use_cache else None
        self.step_ids, self.step_mask = self.ids, (self.mask if self.padded else None)

    def logits(self) -> torch.Tensor:
        if self.cache is not None:
            return self.model(self.step_ids, attention_mask=self.step_mask, cache=self.cache)[:, -1]
        return self.model(self.ids, attention_mask=self.mask if self.padded else None)[:, -1]

    def advance(self, next_ids: torch.Tensor) -> None:
        # With a cache, the prompt's padding stays recorded in it, so later steps need no mask.
        self.step_ids, self.step_mask = next_ids.unsqueeze(1), None
        self.ids = torch.cat([self.ids, self.step_ids], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(self.step_ids)], dim=1)


class _EncoderDecoder:
    """Steps of an encoder-decoder model: encode the prompts once, decode from the start token (T5: the pad id)."""

    def __init__(self, model, prompts, limits, pad_id, use_cache, device):
        self.model = model
        start = model.config.pad_token_id
        ids, self.mask = left_pad(prompts, start, device)
        self.memory = model.encode(ids, self.mask)
        self.cache = model.new_cache(self.memory, max(limits) + 1) if use_cache else None
        self.decoded = torch.full((len(prompts), 1), start, dtype=torch.long, device=device)
        self.step_ids = self.decoded

    def logits(self) -> torch.Tensor:
        ids = self.step_ids if self.cache is not None else self.decoded
        return self.model.decode(ids, self.memory, self.mask, cache=self.cache)[:, -1]

    def advance(self, next_ids: torch.Tensor) -> None:
        self.step_ids = next_ids.unsqueeze(1)
        self.decoded = torch.cat([self.decoded, self.step_ids], dim=1)


def _choose(logits: torch.Tensor, rows: list[DecodeRow]) -> torch.Tensor:
    """Next token per row; rows with equal settings and the same generator are sampled in one call (finished rows
    too, so a generator's draws do not depend on when other rows end)."""
    chosen = torch.empty(len(rows), dtype=torch.long, device=logits.device)
    groups: dict[tuple, list[int]] = {}
    for index in range(len(rows)):
        s, generator = rows[index].sampling, rows[index].generator
        groups.setdefault((s.temperature, s.top_k, s.top_p, id(generator)), []).append(index)
    for members in groups.values():
        index = torch.tensor(members, device=logits.device)
        chosen[index] = choose_next(logits[index], rows[members[0]].sampling, rows[members[0]].generator)
    return chosen


@torch.inference_mode()
def decode(
    model: nn.Module,
    rows: list[DecodeRow],
    eos_id: int,
    on_token: TokenHook | None = None,
    on_finish: FinishHook | None = None,
    cancelled: CancelCheck | None = None,
    use_cache: bool = True,
) -> list[RowResult]:
    """Continue every row together until each one ends: at EOS (not kept), when `on_token` says so, at its
    max_new_tokens, or when `cancelled(row)` turns true. Prompts too long for the context lose their oldest tokens,
    so that every answer fits."""
    spec = family_of(model)
    if not spec.can_generate:
        raise ValueError(f"model family {spec.name!r} does not generate text")
    if not rows or any(len(r.prompt_ids) == 0 for r in rows):
        raise ValueError("every prompt needs at least one token")
    context = int(model.config.max_seq_len)
    limits = [min(r.sampling.max_new_tokens, context - (0 if spec.encoder_decoder else 1)) for r in rows]
    keep = context if spec.encoder_decoder else context - max(limits)
    prompts = [r.prompt_ids[-keep:] for r in rows]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        steps = (_EncoderDecoder if spec.encoder_decoder else _DecoderOnly)(
            model, prompts, limits, eos_id, use_cache, device
        )
        hooks = (on_token, on_finish, cancelled)
        return _loop(steps, rows, prompts, limits, eos_id, model.config.vocab_size, device, hooks)
    finally:
        model.train(was_training)


def _loop(steps, rows, prompts, limits, eos_id, vocab_size, device, hooks) -> list[RowResult]:
    on_token, on_finish, cancelled = hooks
    results = [RowResult(tokens=[]) for _ in rows]
    live = list(range(len(rows)))
    penalised = [i for i, r in enumerate(rows) if r.sampling.repetition_penalty != 1.0]
    seen = None
    if penalised:
        seen = torch.zeros(len(rows), vocab_size, dtype=torch.bool, device=device)
        for i in penalised:
            seen[i, torch.tensor(prompts[i], device=seen.device)] = True

    def finish(index: int, reason: str) -> None:
        results[index].finish_reason = reason
        live.remove(index)
        if on_finish is not None:
            on_finish(index, reason)

    for _ in range(max(limits)):
        logits = steps.logits()
        for i in penalised:
            penalty = rows[i].sampling.repetition_penalty
            logits[i] = apply_repetition_penalty(logits[i : i + 1], seen[i : i + 1], penalty)[0]
        next_ids = _choose(logits, rows)
        for index, token in zip(list(live), next_ids[live].tolist(), strict=True):
            if cancelled is not None and cancelled(index):
                finish(index, "cancelled")
                continue
            if rows[index].sampling.stop_at_eos and token == eos_id:
                finish(index, "stop")
                continue
            results[index].tokens.append(token)
            if on_token is not None and on_token(index, results[index].tokens):
                finish(index, "stop")
            elif len(results[index].tokens) >= limits[index]:
                finish(index, "length")
        if not live:
            break
        if seen is not None:
            seen[torch.arange(len(rows), device=seen.device), next_ids] = True
        steps.advance(next_ids)
    return results


def generate(
    model: nn.Module,
    prompts: list[list[int]],
    cfg: SamplingConfig,
    eos_id: int,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    stop_sequences: list[list[int]] | None = None,
    stop_strings: list[str] | None = None,
    decode_text: Callable[[list[int]], str] | None = None,
) -> list[list[int]]:
    """New token ids for each prompt (prompt excluded), stopping at EOS (not included), at a stop sequence of ids
    (not included), once the decoded text holds a stop string (tokens kept; see `cut_at_stop`), or at
    max_new_tokens. All rows share `cfg` and `generator`."""
    sequences = [list(s) for s in stop_sequences or [] if s]
    strings = [s for s in stop_strings or [] if s]
    if strings and decode_text is None:
        raise ValueError("stop_strings need a decode_text function (token ids -> text)")

    def stop(_: int, tokens: list[int]) -> bool:
        if any(tokens[-len(seq) :] == seq for seq in sequences):
            return True
        return bool(strings) and any(s in decode_text(tokens) for s in strings)

    rows = [DecodeRow(prompt, cfg, generator) for prompt in prompts]
    results = decode(model, rows, eos_id, on_token=stop if sequences or strings else None, use_cache=use_cache)
    outputs = []
    for result in results:
        tokens = result.tokens
        ended = next((seq for seq in sequences if tokens[-len(seq) :] == seq), None)
        outputs.append(tokens[: -len(ended)] if ended else tokens)
    return outputs
