"""Test-only callbacks for multi-process runs, importable by `_target_` (tests/ is on PYTHONPATH in child processes)."""

import json
import os
import time

import lightning as L

# A tiny run whose per-step global loss multi-process, multi-node and elastically resumed runs must reproduce: one
# process trains it on 8 samples per step (data.batch_size=8), n processes on 8 / n each.
CURVE_STEPS = 6
CURVE = (
    "experiment=smoke",
    "callbacks=minimal",
    "trainer.accelerator=cpu",
    "eval.limit_batches=2",
    f"trainer.max_steps={CURVE_STEPS}",
    f"trainer.val_check_interval={CURVE_STEPS}",
)


def record_loss(path) -> tuple[str, str]:
    """The overrides that make a run append its per-step global loss to `path` (RecordGlobalLoss)."""
    return ("+callbacks.record._target_=scale_helpers.RecordGlobalLoss", f"+callbacks.record.path={path}")


class RecordGlobalLoss(L.Callback):
    """Append {step, loss} per optimizer step to a jsonl file, the loss averaged over all ranks and over the step's
    accumulated micro-batches (the global batch's loss), so runs with different process counts and accumulation
    can be compared step by step. Written by rank 0 only."""

    def __init__(self, path: str):
        self.path = path
        self._micro: list[float] = []
        self._step = 0

    def on_train_start(self, trainer, pl_module):
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = trainer.strategy.reduce(outputs["loss"].detach().float().clone(), reduce_op="mean")
        self._micro.append(float(loss))
        if trainer.global_step == self._step:  # accumulating: the optimizer has not stepped yet
            return
        self._step = trainer.global_step
        if trainer.is_global_zero:
            with open(self.path, "a") as handle:
                # Lightning hands each micro-batch's loss divided by the accumulation: their sum is the step's mean.
                row = {"step": trainer.global_step - 1, "loss": sum(self._micro)}
                row["restart"] = int(os.environ.get("SLURM_RESTART_COUNT", 0))  # which run of a requeued job
                handle.write(json.dumps(row) + "\n")
        self._micro = []


def read_rows(path) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def read_losses(path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in read_rows(path)}


class SlowSteps(L.Callback):
    """Sleep after every training step: makes a tiny run last long enough to be signalled part-way."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
