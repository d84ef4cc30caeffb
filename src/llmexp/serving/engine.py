"""The server's request queue over the one decoding loop (`llmexp.models.generation.RunningBatch`): continuous
batching. Requests join the running batch between decode steps (the prompts that arrived meanwhile are read
together) and leave it as soon as they end, so a long request never holds short ones and a newcomer never waits
for a batch to drain. Each request keeps its own sampling settings, length and seed, and every new token is handed
to it as soon as it is chosen (so responses can stream). A request whose client has gone is cancelled without
stopping the others. `continuous=False` is static batching (newcomers wait until the batch is empty), kept to
measure against.
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

from llmexp.models.generation import DecodeRow, RowHooks, RunningBatch, SamplingConfig, room

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
    """What one decode step of the running batch did (fed to /metrics)."""

    size: int
    new_tokens: int
    seconds: float


class BatchingEngine:
    """A worker thread that decodes queued requests in one running batch of up to `max_batch_size` rows. When the
    batch is empty, the first request waits at most `max_wait_ms` for others to be read with it; while it runs,
    whatever has arrived joins before the next step. `max_batch_size=1` turns batching off."""

    def __init__(
        self,
        model: nn.Module,
        eos_id: int,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        continuous: bool = True,
    ):
        if max_batch_size < 1:
            raise ValueError(f"serve.max_batch_size must be >= 1, got {max_batch_size}")
        self.model, self.eos_id = model, eos_id
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.on_batch, self.continuous = on_batch, continuous
        self._queue: queue.Queue[GenerationRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="llmexp-batching", daemon=True)
        self._stopping = threading.Event()
        self._active: list[GenerationRequest] = []  # requests in the running batch
        self._generated = 0

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

    def _take(self, running: int) -> list[GenerationRequest]:
        """The requests that join now: with an empty batch, the first to come and those within `max_wait_ms` of
        it; with a running one, those already waiting (none under static batching)."""
        free = self.max_batch_size - running if self.continuous or not running else 0
        taken: list[GenerationRequest] = []
        deadline = None
        if not running:
            first = self._queue.get()
            if first is None:
                self._stopping.set()
                return []
            taken, deadline = [first], time.perf_counter() + self.max_wait
        while len(taken) < free:
            try:
                wait = None if deadline is None else max(0.0, deadline - time.perf_counter())
                request = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._stopping.set()
                break
            taken.append(request)
        for request in [r for r in taken if r.cancelled.is_set()]:
            request.on_done("cancelled", None)
        return [r for r in taken if not r.cancelled.is_set()]

    def _join(self, batch: RunningBatch, requests: list[GenerationRequest]) -> None:
        """Read the requests' prompts into the running batch; a failure fails them alone."""
        device = next(self.model.parameters()).device
        rows, hooks = [], []
        for request in requests:
            # Every sampled request gets a generator of its own, so that its draws depend on no other request.
            seed = request.seed if request.seed is not None else int(torch.randint(2**62, ()))
            rows.append(DecodeRow(request.prompt_ids, request.sampling, torch.Generator(device).manual_seed(seed)))
            hooks.append(self._hooks(request))
        try:
            batch.join(rows, hooks)
        except Exception as err:  # a prompt the model cannot read must not stop the server
            log.exception("reading %d prompt(s) failed", len(requests))
            for request in requests:
                request.on_done("error", f"{type(err).__name__}: {err}")
            return
        self._active += requests

    def _hooks(self, request: GenerationRequest) -> RowHooks:
        def on_token(tokens: list[int]) -> None:
            self._generated += 1
            request.on_token(tokens[-1])

        def on_finish(reason: str) -> None:
            self._active.remove(request)
            request.on_done(reason, None)

        return RowHooks(on_token=on_token, on_finish=on_finish, cancelled=request.cancelled.is_set)

    def _step(self, batch: RunningBatch) -> RunningBatch:
        """One decode step; a failure fails every request in the batch and starts an empty one."""
        started, self._generated, size = time.perf_counter(), 0, len(batch)
        try:
            batch.step()
        except Exception as err:  # one bad step must not stop the server: fail its requests
            log.exception("a decode step of %d rows failed", size)
            for request in self._active:
                request.on_done("error", f"{type(err).__name__}: {err}")
            self._active = []
            return RunningBatch(self.model, self.eos_id)
        if self.on_batch is not None:
            self.on_batch(BatchStats(size, self._generated, time.perf_counter() - started))
        return batch

    def _run(self) -> None:
        batch = RunningBatch(self.model, self.eos_id)
        while True:
            if not self._stopping.is_set():
                joining = self._take(len(batch))
                if joining:
                    self._join(batch, joining)
            if len(batch):
                batch = self._step(batch)
            elif self._stopping.is_set():  # requests already decoding were finished first
                return
