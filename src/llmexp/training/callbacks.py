"""Callbacks that turn a run into something to look at: the loss-curve PNG and generated samples."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from llmexp.models.generation import SamplingConfig, generate
from llmexp.tracking.metrics import read_metrics_csv
from llmexp.tracking.plots import plot_curves

log = logging.getLogger(__name__)


def run_dir(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir)


class LossCurvePlot(L.Callback):
    """At the end of fit, plot train/val loss and bits per byte from the CSV logger's metrics.csv."""

    def __init__(self, filename: str = "loss_curve.png"):
        self.filename = filename

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        csv_logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is None:
            log.warning("LossCurvePlot needs logger=csv (or one that includes it); no plot written")
            return
        csv_logger.save()
        metrics_file = Path(csv_logger.experiment.metrics_file_path)
        if not metrics_file.exists():
            return
        folder = run_dir(trainer)
        try:
            path = plot_curves({folder.name: read_metrics_csv(metrics_file)}, folder / self.filename, title=str(folder))
        except ValueError as err:
            log.warning("no loss curve: %s", err)
            return
        log.info("loss curve: %s", path)


class SampleGeneration(L.Callback):
    """At the end of fit, continue a few prompts with the shared generation loop and write them to a file."""

    def __init__(
        self,
        prompts: list[str],
        max_new_tokens: int = 64,
        temperature: float = 0.8,
        top_k: int | None = 50,
        top_p: float | None = None,
        filename: str = "samples.txt",
        seed: int = 0,
    ):
        self.prompts = list(prompts)
        self.sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
        self.filename, self.seed = filename, seed

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        if tokenizer is None or not self.prompts:
            return
        model = pl_module.model
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        prompts = [tokenizer.encode(p) for p in self.prompts]
        outputs = generate(model, prompts, self.sampling, tokenizer.eos_id, generator=generator)
        texts = [prompt + tokenizer.decode(out) for prompt, out in zip(self.prompts, outputs, strict=True)]
        path = run_dir(trainer) / self.filename
        sep = "\n" + "-" * 60 + "\n"
        path.write_text(sep.join(texts) + "\n", encoding="utf-8")
        log.info("samples written to %s", path)
        print(f"\nSamples after {trainer.global_step} steps:{sep}{sep.join(texts)}{sep}")


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
        tokens = steps * batch["input_ids"].numel() * trainer.world_size * trainer.accumulate_grad_batches
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


def progress_bar(refresh_rate: int = 5, log_every: int = 50) -> L.Callback:
    """Lightning's rich bar in a terminal; plain log lines elsewhere (CI, SLURM logs, pipes), where a bar is noise."""
    if sys.stdout.isatty():
        from lightning.pytorch.callbacks import RichProgressBar

        return RichProgressBar(refresh_rate=refresh_rate)
    return LogProgress(every=log_every)
