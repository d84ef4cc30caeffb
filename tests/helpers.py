"""Test-only callbacks, importable by `_target_` from configs composed in tests."""

import lightning as L


class StopAtStep(L.Callback):
    """End fit after `step` optimizer steps, as if the run had been interrupted there (the last checkpoint is saved)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True
