"""The one decoding loop of llmexp, used by generate, the samples callback, evaluation and the server.

`RunningBatch` continues rows together, each with its own sampling settings, length limit and random generator,
with a KV cache; decoder-only families continue the prompt, encoder-decoder families (T5) read it with the encoder
and decode from the start token. Rows join between steps and leave as soon as they end (the server's continuous
batching). A per-token hook sees every new token as it is chosen (streaming, stop strings) and can end its row; a
cancellation check ends a row whose client has gone. `decode` runs a fixed set of rows to the end; `generate` is the
plain "prompts in, token ids out" call on top of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from llmexp.config.ranges import SAMPLING, allows, describe
from llmexp.errors import ConfigError
from llmexp.models.decode_steps import DecoderOnlySteps, EncoderDecoderSteps
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


def _choose(logits: torch.Tensor, rows: list[DecodeRow], order: list[int]) -> torch.Tensor:
    """Next token per row; rows with equal settings and the same generator are sampled in one call, in `order` (the
    order they joined in, whatever places they hold now), finished rows too, so a generator's draws do not depend
    on when other rows end."""
    chosen = torch.empty(len(rows), dtype=torch.long, device=logits.device)
    groups: dict[tuple, list[int]] = {}
    for index in sorted(range(len(rows)), key=order.__getitem__):
        s, generator = rows[index].sampling, rows[index].generator
        groups.setdefault((s.temperature, s.top_k, s.top_p, id(generator)), []).append(index)
    for members in groups.values():
        index = torch.tensor(members, device=logits.device)
        chosen[index] = choose_next(logits[index], rows[members[0]].sampling, rows[members[0]].generator)
    return chosen


def fill_holes(kept: list[int]) -> list[int]:
    """The new order of the kept rows of a batch: the ones past the new end move into the places of rows that left,
    the others stay where they are (so dropping rows copies only the moved rows' cache)."""
    stay = set(kept)
    moving = [row for row in kept if row >= len(kept)]
    return [row if row in stay else moving.pop() for row in range(len(kept))]


@dataclass
class RowHooks:
    """What a row's owner hears: every new token (returning True ends the row), the end and its reason, and
    whether the row is still wanted (checked before each token is handed over)."""

    on_token: Callable[[list[int]], bool | None] | None = None
    on_finish: Callable[[str], None] | None = None
    cancelled: Callable[[], bool] | None = None


@dataclass
class _Row:
    spec: DecodeRow
    hooks: RowHooks
    limit: int
    group: int  # the join() it came with
    number: int  # rows joined before it
    result: RowResult
    seen: torch.Tensor | None  # tokens already present, for the repetition penalty
    live: bool = True


class RunningBatch:
    """Rows decoded together, one token per row per `step`. Rows `join` between steps (their prompts are read at
    once, with a KV cache of their own that is appended to the batch's) and leave as soon as they end, so a long
    row never holds a short one and a newcomer never waits for the batch to drain. A row that ended but was
    sampled with the same random generator as a live row of its join stays (silently) until that row ends: a
    generator's draws do not depend on when other rows end."""

    def __init__(self, model: nn.Module, eos_id: int, use_cache: bool = True):
        spec = family_of(model)
        if not spec.can_generate:
            raise ValueError(f"model family {spec.name!r} does not generate text")
        self.model, self.eos_id, self.encoder_decoder = model, eos_id, spec.encoder_decoder
        self.context = int(model.config.max_seq_len)
        self.device = next(model.parameters()).device
        steps = EncoderDecoderSteps if spec.encoder_decoder else DecoderOnlySteps
        self.side = steps(model, use_cache, self.device)
        self.rows: list[_Row] = []
        self.logits: torch.Tensor | None = None  # every row's next-token logits
        self._joins = self._numbered = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def live(self) -> int:
        return sum(row.live for row in self.rows)

    @torch.inference_mode()
    def join(self, rows: list[DecodeRow], hooks: list[RowHooks] | None = None) -> list[RowResult]:
        """Add rows (their prompts are read now); their results fill in as the batch steps. Prompts too long for
        the context lose their oldest tokens, so that every answer fits."""
        if not rows or any(len(r.prompt_ids) == 0 for r in rows):
            raise ValueError("every prompt needs at least one token")
        limits = [min(r.sampling.max_new_tokens, self.context - (0 if self.encoder_decoder else 1)) for r in rows]
        keep = self.context if self.encoder_decoder else self.context - max(limits)
        prompts = [r.prompt_ids[-keep:] for r in rows]
        logits = self.side.join(prompts, limits, self.eos_id)
        self.logits = logits if self.logits is None else torch.cat([self.logits, logits])
        joined = [
            _Row(row, hook, limit, self._joins, self._numbered + i, RowResult(tokens=[]), self._seen(row, prompt))
            for i, (row, hook, limit, prompt) in enumerate(
                zip(rows, hooks or [RowHooks()] * len(rows), limits, prompts, strict=True)
            )
        ]
        self._joins, self._numbered = self._joins + 1, self._numbered + len(rows)
        self.rows += joined
        return [row.result for row in joined]

    def _seen(self, row: DecodeRow, prompt: list[int]) -> torch.Tensor | None:
        if row.sampling.repetition_penalty == 1.0:
            return None
        seen = torch.zeros(self.model.config.vocab_size, dtype=torch.bool, device=self.device)
        seen[torch.tensor(prompt, device=self.device)] = True
        return seen

    @torch.inference_mode()
    def step(self) -> None:
        """Choose one token for every row, hand it over, drop the rows that ended, and read the others' tokens."""
        for i, row in enumerate(self.rows):
            if row.seen is not None:
                penalty = row.spec.sampling.repetition_penalty
                self.logits[i] = apply_repetition_penalty(self.logits[i : i + 1], row.seen[None], penalty)[0]
        next_ids = _choose(self.logits, [row.spec for row in self.rows], [row.number for row in self.rows])
        for row, token in zip(self.rows, next_ids.tolist(), strict=True):
            if row.live:
                self._hand_over(row, token)
            if row.seen is not None:
                row.seen[token] = True
        kept = fill_holes([i for i, row in enumerate(self.rows) if row.live or self._drawn_with_a_live_row(row)])
        if len(kept) < len(self.rows):
            self.side.keep(kept)
            self.rows = [self.rows[i] for i in kept]
            next_ids = next_ids[torch.tensor(kept, dtype=torch.long, device=next_ids.device)]
        self.logits = self.side.step(next_ids) if self.rows else None

    def _hand_over(self, row: _Row, token: int) -> None:
        hooks, tokens = row.hooks, row.result.tokens
        if hooks.cancelled is not None and hooks.cancelled():
            self._finish(row, "cancelled")
        elif row.spec.sampling.stop_at_eos and token == self.eos_id:
            self._finish(row, "stop")
        else:
            tokens.append(token)
            if hooks.on_token is not None and hooks.on_token(tokens):
                self._finish(row, "stop")
            elif len(tokens) >= row.limit:
                self._finish(row, "length")

    def _finish(self, row: _Row, reason: str) -> None:
        row.live, row.result.finish_reason = False, reason
        if row.hooks.on_finish is not None:
            row.hooks.on_finish(reason)

    def _drawn_with_a_live_row(self, row: _Row) -> bool:
        def samples(r: _Row) -> bool:
            return r.spec.sampling.temperature > 0

        return samples(row) and any(
            other.live and other.group == row.group and other.spec.generator is row.spec.generator and samples(other)
            for other in self.rows
        )


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
    batch = RunningBatch(model, eos_id, use_cache)

    def hooks(index: int) -> RowHooks:
        return RowHooks(
            on_token=(lambda tokens: on_token(index, tokens)) if on_token else None,
            on_finish=(lambda reason: on_finish(index, reason)) if on_finish else None,
            cancelled=(lambda: cancelled(index)) if cancelled else None,
        )

    was_training = model.training
    model.eval()
    try:
        results = batch.join(rows, [hooks(i) for i in range(len(rows))])
        while batch.live:
            batch.step()
        return results
    finally:
        model.train(was_training)


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
