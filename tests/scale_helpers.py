"""Test-only callbacks for multi-process runs, importable by `_target_` (tests/ is on PYTHONPATH in child processes)."""

import json
import os
import time

import lightning as L


class RecordGlobalLoss(L.Callback):
    """Append {step, loss} per optimizer step to a jsonl file, the loss averaged over all ranks (the global batch's
    loss), so runs with different process counts can be compared step by step. Written by rank 0 only."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = trainer.strategy.reduce(outputs["loss"].detach().float().clone(), reduce_op="mean")
        if trainer.is_global_zero:
            with open(self.path, "a") as handle:
                row = {"step": trainer.global_step - 1, "loss": float(loss)}
                row["restart"] = int(os.environ.get("SLURM_RESTART_COUNT", 0))  # which run of a requeued job
                handle.write(json.dumps(row) + "\n")


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
