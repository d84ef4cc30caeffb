"""Resume points: a checkpoint every N steps (keeping the last few), `last.ckpt`, and a final one when training ends.

A checkpoint is written at the end of its step, before that step's validation runs; if the process dies during
that validation, Lightning's restart skips it. So the step of the last finished validation is recorded beside the
checkpoints (`validated.json`), and a run resumed at a step whose validation is due and not recorded runs it first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

VALIDATED = "validated.json"


class ResumeCheckpoint(ModelCheckpoint):
    """Keeps the newest `keep_last` step checkpoints (best-by-metric retention is a separate ModelCheckpoint) and
    `last.ckpt`, which always holds the newest state, including the step training ended on."""

    def __init__(
        self,
        dirpath: str | Path,
        every_n_train_steps: int = 50,
        keep_last: int = 2,
        filename: str = "periodic-step{step:06d}",
    ):
        if every_n_train_steps < 1 or keep_last < 1:
            raise ValueError(
                f"every_n_train_steps={every_n_train_steps} and keep_last={keep_last}: both must be at least 1"
            )
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            auto_insert_metric_name=False,
            monitor="step",
            mode="max",
            save_top_k=keep_last,
            every_n_train_steps=every_n_train_steps,
            save_last=True,
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        # The final step is saved where periodic ones are: a checkpoint from the end of fit would restart the epoch.
        final = trainer.should_stop or (trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps)
        if final and trainer.global_step > self._last_global_step_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @property
    def record(self) -> Path:
        return Path(self.dirpath or ".") / VALIDATED

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and trainer.is_global_zero:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            partial = self.record.with_name(f".{VALIDATED}.tmp-{os.getpid()}")
            partial.write_text(json.dumps({"global_step": trainer.global_step}))
            partial.replace(self.record)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        recorded = json.loads(self.record.read_text())["global_step"] if self.record.is_file() else -1
        if trainer.global_step > max(recorded, 0) and validation_due(trainer):
            run_validation(trainer)


def validation_due(trainer: L.Trainer) -> bool:
    """Whether step-based validation (val_check_interval in steps, the llmexp default) falls on this step."""
    interval = trainer.val_check_batch
    if trainer.check_val_every_n_epoch is not None or not isinstance(interval, int) or not trainer.limit_val_batches:
        return False
    return (trainer.global_step * trainer.accumulate_grad_batches) % interval == 0


def run_validation(trainer: L.Trainer) -> None:
    """The validation of the current step, as the training loop runs it after a step (Lightning has no public
    call for validation inside fit)."""
    connector = trainer._logger_connector
    first_loop_iter = connector._first_loop_iter
    trainer.validating = True
    trainer.fit_loop.epoch_loop.val_loop.run()
    trainer.training = True
    connector._first_loop_iter = first_loop_iter
