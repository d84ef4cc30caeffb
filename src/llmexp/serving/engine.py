"""Dynamic batching over the shared generation pieces: requests that arrive within a short window are decoded as one
batch, and every new token is handed to its request as soon as it is chosen (so responses can stream).

The step loop is the one of `llmexp.models.generation.generate` (left padding, KV cache, `choose_next`,
repetition penalty) with two additions a server needs: each row keeps its own sampling settings and length, and a
row can be cancelled (client gone, stop string seen) without stopping the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from llmexp.models.generation import SamplingConfig, apply_repetition_penalty, choose_next, left_pad

log = logging.getLogger(__name__)

# Event handed to a request: a token id, or the end ("stop" at EOS, "length" at max_new_tokens, "error").
TokenCallback = Callable[[int], None]
DoneCallback = Callable[[str, str | None], None]


@dataclass
class GenerationRequest:
    """One sequence to continue. Callbacks run on the engine thread and must return quickly."""

    prompt_ids: list[int]
    sampling: SamplingConfig
    on_token: TokenCallback
    on_done: DoneCallback
    seed: int | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """What one decoded batch did (fed to /metrics)."""

    size: int
    new_tokens: int
    seconds: float


def _choose(logits: torch.Tensor, batch: list[GenerationRequest], generators: list[torch.Generator | None]):
    """Next token per row; rows with equal settings and no private generator are sampled together."""
    chosen = torch.empty(len(batch), dtype=torch.long, device=logits.device)
    groups: dict[tuple, list[int]] = {}
    for row, request in enumerate(batch):
        s = request.sampling
        key = (s.temperature, s.top_k, s.top_p) if generators[row] is None else ("own", row)
        groups.setdefault(key, []).append(row)
    for rows in groups.values():
        index = torch.tensor(rows, device=logits.device)
        chosen[index] = choose_next(logits[index], batch[rows[0]].sampling, generators[rows[0]])
    return chosen


@torch.inference_mode()
def decode_batch(model: nn.Module, batch: list[GenerationRequest], eos_id: int) -> int:
    """Continue every request of `batch` together; return the number of tokens generated.

    The caller guarantees that each prompt plus its max_new_tokens fits the model's context.
    """
    device = next(model.parameters()).device
    ids, mask = left_pad([r.prompt_ids for r in batch], pad_id=eos_id, device=device)
    size = len(batch)
    limits = [r.sampling.max_new_tokens for r in batch]
    generators = [torch.Generator(device=device).manual_seed(r.seed) if r.seed is not None else None for r in batch]
    penalised = [row for row, r in enumerate(batch) if r.sampling.repetition_penalty != 1.0]
    seen = torch.zeros(size, model.config.vocab_size, dtype=torch.bool, device=device) if penalised else None
    if seen is not None:
        seen.scatter_(1, ids, mask.bool())
    done = [False] * size
    produced = [0] * size
    cache = model.new_cache(size, ids.shape[1] + max(limits))
    step_ids, step_mask, generated = ids, mask, 0
    for _ in range(max(limits)):
        logits = model(step_ids, attention_mask=step_mask, cache=cache)[:, -1]
        for row in penalised:
            penalty = batch[row].sampling.repetition_penalty
            logits[row] = apply_repetition_penalty(logits[row : row + 1], seen[row : row + 1], penalty)[0]
        next_ids = _choose(logits, batch, generators)
        for row, (request, token) in enumerate(zip(batch, next_ids.tolist(), strict=True)):
            if done[row]:
                continue
            if request.cancelled.is_set():
                done[row] = True
                request.on_done("cancelled", None)
            elif request.sampling.stop_at_eos and token == eos_id:
                done[row] = True
                request.on_done("stop", None)
            else:
                request.on_token(token)
                produced[row] += 1
                generated += 1
                if produced[row] >= limits[row]:
                    done[row] = True
                    request.on_done("length", None)
        if all(done):
            break
        if seen is not None:
            seen[torch.arange(size, device=device), next_ids] = True
        step_ids = next_ids.unsqueeze(1)
        step_mask = torch.ones_like(step_ids)
    return generated


class BatchingEngine:
    """A worker thread that takes queued requests in batches of up to `max_batch_size`, waiting at most
    `max_wait_ms` after the first one for others to join. `max_batch_size=1` turns batching off."""

    def __init__(
        self,
        model: nn.Module,
        eos_id: int,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"serve.max_batch_size must be >= 1, got {max_batch_size}")
        self.model, self.eos_id = model, eos_id
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: queue.Queue[GenerationRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="llmexp-batching", daemon=True)
        self._stopping = threading.Event()

    @property
    def context_length(self) -> int:
        return int(self.model.config.max_seq_len)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> BatchingEngine:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def submit(self, request: GenerationRequest) -> None:
        if len(request.prompt_ids) + request.sampling.max_new_tokens > self.context_length:
            raise ValueError(
                f"{len(request.prompt_ids)} prompt tokens + {request.sampling.max_new_tokens} new tokens exceed "
                f"the context of {self.context_length}"
            )
        self._queue.put(request)

    def _next_batch(self) -> list[GenerationRequest]:
        first = self._queue.get()
        if first is None:
            return []
        batch, deadline = [first], time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch_size:
            try:
                request = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if request is None:
                self._stopping.set()
                break
            batch.append(request)
        live = []
        for request in batch:
            if request.cancelled.is_set():
                request.on_done("cancelled", None)
            else:
                live.append(request)
        return live

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                generated = decode_batch(self.model, batch, self.eos_id)
            except Exception as err:  # one bad batch must not stop the server: fail its requests, keep serving
                log.exception("generation failed for a batch of %d", len(batch))
                for request in batch:
                    request.on_done("error", f"{type(err).__name__}: {err}")
                continue
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(batch), generated, time.perf_counter() - started))
