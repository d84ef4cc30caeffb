"""Resume points: a checkpoint every N steps (keeping the last few), `last.ckpt`, and a final one when training ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


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
