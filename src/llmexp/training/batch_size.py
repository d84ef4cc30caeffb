"""A FLOP-aware batch-size finder: the smallest batch that gets (nearly) the best tokens/s the hardware gives.

Memory-based finders (Lightning's Tuner) return the largest batch that fits, which on GPUs often costs optimisation
efficiency for no speed and on CPUs never stops. This one measures throughput: it trains a copy of the task for a
few steps at each candidate batch size, stops when a size runs out of memory or throughput stops improving, and
picks the smallest size within `tolerance` of the best tokens/s (with its MFU, so the choice is explained).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import lightning as L
import torch

from llmexp.training.callbacks.throughput import ThroughputMonitor

log = logging.getLogger(__name__)


@dataclass
class BatchTrial:
    batch_size: int
    tokens_per_sec: float | None  # None: out of memory
    mfu: float | None = None


def measure(
    task: L.LightningModule, datamodule: L.LightningDataModule, batch_size: int, steps: int, trainer_kwargs: dict
) -> BatchTrial:
    """tokens/s of `steps` training steps at this batch size, on a throwaway copy of the task."""
    trial_task, trial_data = copy.deepcopy(task), copy.copy(datamodule)
    trial_data.batch_size = batch_size
    monitor = ThroughputMonitor(window=max(1, steps - 3), skip_first=2)
    trainer = L.Trainer(
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
        **trainer_kwargs,
    )
    try:
        trainer.fit(trial_task, datamodule=trial_data)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return BatchTrial(batch_size, None)
    if not monitor.history:
        return BatchTrial(batch_size, None)
    summary = monitor.summary()
    return BatchTrial(batch_size, summary["perf/tokens_per_sec"], summary.get("perf/mfu"))


def choose(trials: list[BatchTrial], tolerance: float) -> int:
    fitted = [t for t in trials if t.tokens_per_sec]
    if not fitted:
        raise RuntimeError("no candidate batch size could run one step")
    best = max(t.tokens_per_sec for t in fitted)
    return min(t.batch_size for t in fitted if t.tokens_per_sec >= (1 - tolerance) * best)


def find_batch_size(
    task: L.LightningModule,
    datamodule: L.LightningDataModule,
    trainer_kwargs: dict,
    start: int = 1,
    max_size: int = 512,
    steps: int = 8,
    tolerance: float = 0.05,
    patience: int = 2,
) -> tuple[int, list[BatchTrial]]:
    """Doubling search from `start`; ends at OOM, at `max_size`, or after `patience` sizes without a 5% gain."""
    trials: list[BatchTrial] = []
    size, stale, best = start, 0, 0.0
    while size <= max_size:
        trial = measure(task, datamodule, size, steps, trainer_kwargs)
        trials.append(trial)
        rate = trial.tokens_per_sec
        mfu = f"{trial.mfu:.1%}" if trial.mfu else "-"
        log.info("batch %d: %s tokens/s, MFU %s", size, f"{rate:,.0f}" if rate else "out of memory", mfu)
        if rate is None:
            break
        stale = stale + 1 if rate < best * (1 + tolerance) else 0
        best = max(best, rate)
        if stale >= patience:
            break
        size *= 2
    return choose(trials, tolerance), trials


def tune_batch_size(cfg, task: L.LightningModule, datamodule: L.LightningDataModule) -> int | None:
    """Run the finder when `cfg.batch_size_finder.enabled`; set and return the chosen per-device batch size."""
    from llmexp.training.trainer import resolve_precision

    finder = cfg.get("batch_size_finder")
    if not finder or not finder.enabled:
        return None
    if int(cfg.trainer.devices) != 1 or int(cfg.trainer.num_nodes) != 1:
        raise ValueError("batch_size_finder runs on one device; run it single-device, then launch the big job")
    trainer_kwargs = {
        "accelerator": cfg.trainer.accelerator,
        "devices": 1,
        "precision": resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    }
    chosen, trials = find_batch_size(
        task,
        datamodule,
        trainer_kwargs,
        start=finder.start,
        max_size=finder.max_size,
        steps=finder.steps,
        tolerance=finder.tolerance,
    )
    lines = [
        f"  batch {t.batch_size:>5}: "
        + (f"{t.tokens_per_sec:>10,.0f} tokens/s" if t.tokens_per_sec else "out of memory")
        + (f", MFU {t.mfu:.1%}" if t.mfu else "")
        for t in trials
    ]
    print("Batch-size finder (tokens/s by per-device batch size):\n" + "\n".join(lines) + f"\n  chosen: {chosen}")
    datamodule.batch_size = chosen
    return chosen
