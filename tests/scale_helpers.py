"""Test-only callbacks for multi-process runs, importable by `_target_` (tests/ is on PYTHONPATH in child processes)."""

import json

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
                handle.write(json.dumps({"step": trainer.global_step - 1, "loss": float(loss)}) + "\n")


def read_losses(path) -> dict[int, float]:
    with open(path) as handle:
        rows = [json.loads(line) for line in handle]
    return {row["step"]: row["loss"] for row in rows}
