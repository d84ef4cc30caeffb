"""Evaluation during training: a chosen set of eval tasks every N optimizer steps, logged to every logger."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch

from llmexp.evaluation.suite import EvalSettings, run_tasks
from llmexp.tasks.full_weights import full_language_model
from llmexp.tokenizer import Tokenizer

log = logging.getLogger(__name__)


class PeriodicEval(L.Callback):
    """Run `tasks` (names of llmexp.evaluation.tasks, e.g. heldout, piqa, mc:<file>) every `every_n_steps` steps and
    at the end of fit; metrics are logged as `eval/<task>/<metric>` at the current global step.

    Rank 0 evaluates a model with the full weights (a sharded model is gathered first, every rank taking part); the
    other ranks wait.
    """

    scores_text = True  # needs a causal LM (checked with the other combinations before the run)

    def __init__(self, every_n_steps: int, tasks: list[str], at_fit_end: bool = True, **settings: Any):
        if every_n_steps < 1:
            raise ValueError(f"callbacks.periodic_eval.every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps, self.at_fit_end = every_n_steps, at_fit_end
        self.settings = EvalSettings(tasks=list(tasks), **settings)
        self._last_step = -1

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return
        self._last_step = step
        with full_language_model(trainer, pl_module) as model:
            if model is None:
                return
            tokenizer = getattr(trainer.datamodule, "tokenizer", None) if trainer.datamodule is not None else None
            if tokenizer is None:
                tokenizer = Tokenizer.from_str(pl_module.metadata["tokenizer"])
            with torch.inference_mode():
                results = run_tasks(model, tokenizer, self.settings)
            metrics = {f"eval/{key}": value for key, value in results.items()}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
            trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
            log.info("eval at step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step > 0 and trainer.global_step % self.every_n_steps == 0:
            self._evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_fit_end:
            self._evaluate(trainer, pl_module)
