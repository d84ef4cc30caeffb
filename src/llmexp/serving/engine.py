"""The server's request queue over the one decoding loop (`llmexp.models.generation.decode`): requests that arrive
within a short window are decoded as one batch, each with its own sampling settings, length and seed, and every new
token is handed to its request as soon as it is chosen (so responses can stream). A request whose client has gone
is cancelled without stopping the others.
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

from llmexp.models.generation import DecodeRow, SamplingConfig, decode, room

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


def decode_batch(model: nn.Module, batch: list[GenerationRequest], eos_id: int) -> int:
    """Continue every request of `batch` together; return the number of tokens generated. Requests with a seed get
    their own generator; the others share the global one."""
    device = next(model.parameters()).device
    rows = [
        DecodeRow(
            r.prompt_ids, r.sampling, torch.Generator(device=device).manual_seed(r.seed) if r.seed is not None else None
        )
        for r in batch
    ]

    def on_token(row: int, tokens: list[int]) -> None:
        batch[row].on_token(tokens[-1])

    def on_finish(row: int, reason: str) -> None:
        batch[row].on_done(reason, None)

    results = decode(model, rows, eos_id, on_token, on_finish, cancelled=lambda row: batch[row].cancelled.is_set())
    return sum(len(r.tokens) for r in results)


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

    def room(self, prompt_length: int) -> int:
        """How many new tokens fit after a prompt of this length (the model family decides)."""
        return room(self.model, prompt_length)

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
        if request.sampling.max_new_tokens > self.room(len(request.prompt_ids)):
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
