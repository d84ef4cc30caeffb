"""What every Task (LightningModule) shares: the optimizer wiring, parallelism applied from outside the model, the
metadata written into every checkpoint, and what the task declares about itself for the combination checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from llmexp.models.spec import build_model, family_of
from llmexp.tasks.optim import configure_optimization

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class Task(L.LightningModule):
    """A LightningModule that owns one objective. Subclasses set:

    `objective`: the conf/task option that selects it (a model family lists the objectives it supports);
    `accepts`: the batch kinds it trains on (a DataModule or collator declares the `batch_kind` it makes);
    `trains_language_model`: whether `language_model()` gives a model to sample from and score text with.
    `metadata` (plain JSON-able data: model config, tokenizer, resolved run config) goes into every checkpoint, so a
    checkpoint alone rebuilds the model and its tokenizer.
    """

    objective: ClassVar[str]
    accepts: ClassVar[tuple[str, ...]]
    trains_language_model: ClassVar[bool] = True  # False: `language_model()` is None (nothing to sample or score)

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.model = model
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.metadata = dict(metadata or {})

    def configure_model(self) -> None:
        """A strategy that shards (fsdp2) offers `parallelize`; the units it shards are the family's blocks."""
        parallelize = getattr(self.trainer.strategy, "parallelize", None)
        if parallelize is not None:
            parallelize(self.model, family_of(self.model).block_classes)

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimization(
            self.model, self.optimizer_factory, self.scheduler_factory, int(self.trainer.estimated_stepping_batches)
        )

    def checkpoint_metadata(self) -> dict[str, Any]:
        return self.metadata

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["llmexp"] = self.checkpoint_metadata()

    def language_model(self) -> nn.Module | None:
        """The language model this task trains (what samples and evals run), or None (a classifier)."""
        return self.model

    def fresh_language_model(self) -> nn.Module:
        """An unsharded model of the same structure (adapters included) to load full weights into."""
        return build_model(self.model.config)
