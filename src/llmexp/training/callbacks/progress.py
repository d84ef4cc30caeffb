"""Progress display: a rich bar in a terminal, log lines in batch jobs."""

from __future__ import annotations

import logging
import sys
import time

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from llmexp.training.callbacks.batch_tokens import batch_tokens

log = logging.getLogger(__name__)


class LogProgress(L.Callback):
    """One log line every `every` steps (step, loss, tokens/s): progress for batch jobs and logs that are not a TTY."""

    def __init__(self, every: int = 50):
        self.every = every
        self._last: tuple[float, int] | None = None

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        now = time.perf_counter()
        if self._last is None:
            self._last = (now, step)
            return
        if step % self.every or step == self._last[1]:
            return
        seconds, steps = now - self._last[0], step - self._last[1]
        tokens = steps * batch_tokens(batch)[0] * trainer.world_size * trainer.accumulate_grad_batches
        loss = trainer.callback_metrics.get("train/loss")
        total = trainer.max_steps if trainer.max_steps > 0 else "?"
        log.info(
            "step %d/%s  loss %.4f  %.0f tokens/s",
            step,
            total,
            float(loss) if loss is not None else float("nan"),
            tokens / max(seconds, 1e-9),
        )
        self._last = (now, step)

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        log.info("step %d  %s", trainer.global_step, "  ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items())))


def train_description(epoch: int) -> str:
    """llmexp runs are bounded by max_steps, not epochs: Lightning's own "Epoch 0/-2" names an epoch limit that was
    never set. The epoch is shown only once the data has been seen more than once."""
    return "train" if epoch == 0 else f"train (epoch {epoch + 1})"


def bar_length(batches_per_epoch: float, max_steps: int, accumulate: int) -> float:
    """The bar's length: the batches this run will actually take from the epoch."""
    return min(batches_per_epoch, max_steps * accumulate) if max_steps and max_steps > 0 else batches_per_epoch


def progress_bar(refresh_rate: int = 5, log_every: int = 50) -> L.Callback:
    """Lightning's rich bar in a terminal; plain log lines elsewhere (CI, SLURM logs, pipes), where a bar is noise."""
    if sys.stdout.isatty():
        from lightning.pytorch.callbacks import RichProgressBar

        class StepProgressBar(RichProgressBar):
            @property
            def total_train_batches(self) -> float:
                trainer = self.trainer
                return bar_length(super().total_train_batches, trainer.max_steps, trainer.accumulate_grad_batches)

            def _get_train_description(self, current_epoch: int) -> str:
                return train_description(current_epoch)

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                # Lightning redraws the bar and its metrics after every batch; every `refresh_rate` is enough.
                done = batch_idx + 1
                if done % self.refresh_rate == 0 or done >= self.total_train_batches:
                    super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

            def get_metrics(self, trainer, pl_module) -> dict:
                # The loss is read here, when the bar is drawn, not by Lightning after every step.
                loss = trainer.callback_metrics.get("train/loss")
                shown = super().get_metrics(trainer, pl_module)
                return {**shown, "train/loss": float(loss)} if loss is not None else shown

        return StepProgressBar(refresh_rate=refresh_rate)
    return LogProgress(every=log_every)
