"""Test-only callbacks, importable by `_target_` from configs composed in tests."""

import json
import time

import lightning as L


class StopAtStep(L.Callback):
    """End fit after `step` optimizer steps, as if the run had been interrupted there (the last checkpoint is saved)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class RecordBatches(L.Callback):
    """Append each training batch's step and input ids to a jsonl file (to compare the batch sequence of two runs)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": trainer.global_step, "input_ids": batch["input_ids"].tolist()}) + "\n")


class RecordLoss(L.Callback):
    """Append each optimizer step's training loss (rank 0) to a jsonl file, flushed at once so a killed run keeps it."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.is_global_zero:
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"step": trainer.global_step, "loss": float(outputs["loss"])}) + "\n")


class Throttle(L.Callback):
    """Sleep before every step, so a test can kill a tiny run part-way through instead of after it has finished."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        time.sleep(self.seconds)
