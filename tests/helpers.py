"""Test-only callbacks, importable by `_target_` from configs composed in tests."""

import json

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
