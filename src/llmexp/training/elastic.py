"""Elastic resume: a run checkpointed with one process layout continues with another (2 processes -> 1, 1 -> 2, a
new per-process batch) and trains on the same global batches in the same order, so its loss curve is the one it
would have had uninterrupted.

The global batch is processes x data.batch_size x trainer.accumulate_grad_batches. Every checkpoint records the
layout it was written with; on resume trainer.accumulate_grad_batches is set so that the global batch stays the
same, and the fit loop's counters, which count per-process micro-batches, are converted into the new layout's.
A layout that cannot keep the global batch is refused in one line.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from omegaconf import DictConfig, open_dict

from llmexp.config.hardware import on_gpu
from llmexp.errors import ConfigError

log = logging.getLogger(__name__)

LAYOUT = "data_layout"  # checkpoint key: {"world_size", "batch_size", "accumulate_grad_batches"}


def global_batch(layout: dict[str, int]) -> int:
    return layout["world_size"] * layout["batch_size"] * layout["accumulate_grad_batches"]


def describe(layout: dict[str, int]) -> str:
    return (
        f"{layout['world_size']} process(es) x data.batch_size={layout['batch_size']} x "
        f"trainer.accumulate_grad_batches={layout['accumulate_grad_batches']}"
    )


def world_size(cfg: DictConfig) -> int:
    """Processes the run will have: trainer.num_nodes x trainer.devices (a count, a list of ids, or auto)."""
    devices = cfg.trainer.devices
    if isinstance(devices, int) and devices > 0:
        per_node = devices
    elif not isinstance(devices, str | int):
        per_node = len(devices)
    else:  # auto / -1: every CUDA device on a GPU, one process on a CPU
        from llmexp.config.hardware import cuda_devices

        per_node = cuda_devices() if on_gpu(cfg.trainer.accelerator) else 1
    return int(cfg.trainer.num_nodes) * per_node


def keep_global_batch(cfg: DictConfig, checkpoint: dict[str, Any] | None) -> None:
    """Set trainer.accumulate_grad_batches (and an int trainer.val_check_interval, which counts micro-batches) so
    the resumed run keeps the checkpoint's global batch; ConfigError when no accumulation can."""
    saved = (checkpoint or {}).get(LAYOUT)
    if not saved:
        return
    accumulate = int(cfg.trainer.accumulate_grad_batches)
    now = {"world_size": world_size(cfg), "batch_size": int(cfg.data.batch_size), "accumulate_grad_batches": 1}
    target, per_micro = global_batch(saved), now["world_size"] * now["batch_size"]
    needed = target // per_micro
    if target % per_micro or (accumulate not in (saved["accumulate_grad_batches"], needed)):
        raise ConfigError(
            f"resume: the checkpoint's global batch is {target} samples ({describe(saved)}); "
            f"{describe({**now, 'accumulate_grad_batches': accumulate})} cannot keep it: choose processes x "
            f"data.batch_size dividing {target} (trainer.accumulate_grad_batches then adjusts), or start a new run "
            "with init_from=<checkpoint> for another global batch"
        )
    chosen = {**now, "accumulate_grad_batches": needed}
    if chosen != saved:
        log.info(
            "resuming with %s (the checkpoint had %s): the global batch of %d samples is kept",
            describe(chosen),
            describe(saved),
            target,
        )
    with open_dict(cfg):
        cfg.trainer.accumulate_grad_batches = needed
        interval = cfg.trainer.get("val_check_interval")  # in micro-batches of the configured accumulation
        if isinstance(interval, int) and interval * needed % accumulate == 0:
            cfg.trainer.val_check_interval = interval * needed // accumulate


def _shift(progress: dict[str, Any], old: int, new: int) -> None:
    """Re-count a batch-progress tracker in micro-batches of the new layout: `processed` (whole optimizer steps)
    goes from k to k / old x new, and every other counter keeps its distance to it (Lightning reads those gaps)."""
    for part in ("total", "current"):
        counters = progress[part]
        shift = counters["processed"] // old * new - counters["processed"]
        for name in counters:
            counters[name] += shift


class DataLayout(L.Callback):
    """Records the process layout in every checkpoint, and converts the fit loop's micro-batch counters and the
    training loader's position when a checkpoint of another layout is loaded (see the module docstring)."""

    @staticmethod
    def layout(trainer: L.Trainer) -> dict[str, int] | None:
        batch_size = getattr(trainer.datamodule, "batch_size", None)
        if not isinstance(batch_size, int):
            return None
        return {
            "world_size": trainer.world_size,
            "batch_size": batch_size,
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
        }

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        layout = self.layout(trainer)
        if layout is not None:
            checkpoint[LAYOUT] = layout

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        saved, now = checkpoint.get(LAYOUT), self.layout(trainer)
        if not saved or now is None or saved == now:
            return
        if global_batch(saved) != global_batch(now):
            raise ConfigError(
                f"resume: the checkpoint's global batch is {global_batch(saved)} samples ({describe(saved)}), this "
                f"run's is {global_batch(now)} ({describe(now)})"
            )
        old, new = saved["accumulate_grad_batches"], now["accumulate_grad_batches"]
        fit = checkpoint["loops"]["fit_loop"]
        progress = fit["epoch_loop.batch_progress"]
        if progress["current"]["processed"] % old or progress["total"]["processed"] % old:
            raise ConfigError(
                f"resume: the checkpoint was written part-way through a gradient accumulation ({describe(saved)}); "
                "resume it with the same processes and data.batch_size"
            )
        _shift(progress, old, new)
        for position in fit["state_dict"].get("combined_loader", []):
            if isinstance(position, dict) and "batches" in position:
                position["batches"] = position["batches"] // old * new
