"""Tokens/s, samples/s, model FLOPs utilisation, the data-wait share of each step, and peak memory."""

from __future__ import annotations

import logging
import resource
import statistics
import time

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from llmexp.training.callbacks.batch_tokens import batch_tokens
from llmexp.training.flops import peak_flops

log = logging.getLogger(__name__)


def peak_memory_gb(device: torch.device) -> float:
    """Peak allocated GPU memory, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def model_flops_per_token(pl_module: L.LightningModule, seq_len: int) -> float | None:
    config = getattr(getattr(pl_module, "model", None), "config", None)
    if config is None or not hasattr(config, "flops_per_token"):
        return None
    return float(config.flops_per_token(seq_len))


class ThroughputMonitor(L.Callback):
    """Measures every `window` training batches and logs `perf/*` metrics; prints a summary when training ends.

    Data wait is the time between one batch's end and the next batch's start (the loop fetching data); the rest
    of the step is compute. On GPUs the device is synchronised only at window edges, so the figures cost nothing.
    """

    def __init__(self, window: int = 20, skip_first: int = 2):
        self.window, self.skip_first = window, skip_first
        self.history: list[dict[str, float]] = []
        self._reset()

    def _reset(self) -> None:
        self._window_start: float | None = None
        self._batches = self._tokens = self._samples = 0
        self._data_wait = 0.0
        self._last_end: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._peak, self._peak_source = peak_flops(pl_module.device, trainer.precision)
        self._seen = 0
        self._reset()

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self._data_wait += now - self._last_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._seen += 1
        if self._seen <= self.skip_first:  # first steps include allocator warm-up and compilation
            return
        if self._window_start is None:
            self._sync(pl_module)
            self._window_start = self._last_end = time.perf_counter()
            return
        tokens, rows, seq_len = batch_tokens(batch)
        self._batches += 1
        self._tokens += tokens * trainer.world_size
        self._samples += rows * trainer.world_size
        if self._batches < self.window:
            self._last_end = time.perf_counter()
            return
        self._sync(pl_module)
        now = time.perf_counter()
        self._log(trainer, pl_module, now - self._window_start, seq_len)
        self._reset()
        self._window_start = self._last_end = now

    def _log(self, trainer, pl_module, elapsed: float, seq_len: int) -> None:
        metrics = {
            "perf/tokens_per_sec": self._tokens / elapsed,
            "perf/samples_per_sec": self._samples / elapsed,
            "perf/step_time": elapsed / self._batches,
            "perf/data_wait_frac": self._data_wait / elapsed,
            "perf/peak_mem_gb": peak_memory_gb(pl_module.device),
        }
        flops_per_token = model_flops_per_token(pl_module, seq_len)
        if flops_per_token and self._peak:
            metrics["perf/mfu"] = metrics["perf/tokens_per_sec"] * flops_per_token / (self._peak * trainer.world_size)
        self.history.append(metrics)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, rank_zero_only=True)

    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.history:
            return
        summary = self.summary()
        mfu = (
            f", MFU {summary['perf/mfu']:.1%} of {self._peak / 1e12:.3g} TFLOP/s ({self._peak_source})"
            if "perf/mfu" in summary
            else ""
        )
        print(
            f"\nThroughput (median of {len(self.history)} windows of {self.window} batches): "
            f"{summary['perf/tokens_per_sec']:,.0f} tokens/s, {summary['perf/samples_per_sec']:,.1f} samples/s{mfu}; "
            f"step {summary['perf/step_time'] * 1e3:.0f} ms, data wait {summary['perf/data_wait_frac']:.1%}; "
            f"peak memory {summary['perf/peak_mem_gb']:.2f} GB"
        )

    def summary(self) -> dict[str, float]:
        """Median of each metric over the measured windows (peak memory: the maximum)."""
        keys = self.history[0].keys()
        out = {k: statistics.median(h[k] for h in self.history) for k in keys}
        out["perf/peak_mem_gb"] = max(h["perf/peak_mem_gb"] for h in self.history)
        return out
