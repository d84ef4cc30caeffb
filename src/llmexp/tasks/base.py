"""What every Task (LightningModule) shares: the optimizer wiring, parallelism applied from outside the model, the
metadata written into every checkpoint, and what the task declares about itself for the combination checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from torch import nn

from llmexp.models.spec import build_model, family_of
from llmexp.tasks.optim import configure_optimization

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
StepMetrics = Callable[[], dict[str, Any]]


def logging_step(trainer: L.Trainer) -> bool:
    """Whether this training step's metrics are logged: on the steps Lightning writes to the loggers (every
    `trainer.log_every_n_steps`, and when training stops) and on the last step (what the run's final metrics show).
    Per-step metrics are computed only then: a `self.log` costs ~0.2 ms of Python, and reading a value on the host
    stalls a GPU."""
    last = 0 < trainer.max_steps <= trainer.global_step + 1
    return last or trainer._logger_connector.should_update_logs


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
        self._step_metrics: StepMetrics | None = None
        self._gradient_norm: torch.Tensor | None = None

    def configure_model(self) -> None:
        """A strategy that shards (fsdp2) offers `parallelize`; the units it shards are the family's blocks."""
        parallelize = getattr(self.trainer.strategy, "parallelize", None)
        if parallelize is not None:
            parallelize(self.model, family_of(self.model).block_classes)

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimization(
            self.model,
            self.optimizer_factory,
            self.scheduler_factory,
            int(self.trainer.estimated_stepping_batches),
            fused_allowed=self._plain_precision(),
        )

    def _plain_precision(self) -> bool:
        """fp32/bf16 without a loss scaler or a strategy of its own: what the fast paths below may assume (a fused
        optimizer unscales fp16 gradients itself, which Lightning's clipping refuses; DeepSpeed and FSDP clip
        themselves)."""
        plugin = self.trainer.precision_plugin
        scaler = getattr(plugin, "scaler", None)
        return type(plugin) in (Precision, MixedPrecision) and scaler is None

    def log_train_step(self, metrics: StepMetrics) -> None:
        """Keep how this training step's metrics are computed (from detached tensors) and log them on logging
        steps only."""
        self._step_metrics = metrics
        if logging_step(self.trainer):
            self.log_step_metrics()

    def log_step_metrics(self) -> None:
        """Log the latest training step's metrics and the learning rate."""
        if self._step_metrics is not None:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log_dict({**self._step_metrics(), "train/lr": lr})

    def on_after_backward(self) -> None:
        self._gradient_norm = None  # new gradients

    def gradient_norm(self) -> torch.Tensor:
        """L2 norm of all gradients before clipping, computed once per optimizer step however many ask (the
        divergence guard, `train/grad_norm`, clipping), over the optimizer's parameters in its order (the order
        decides the last bits, and so Lightning's own clipping gives the same weights)."""
        if self._gradient_norm is None:
            grads = [p.grad for p in self._optimized_parameters() if p.grad is not None]
            self._gradient_norm = torch.nn.utils.get_total_norm(grads)
        return self._gradient_norm

    def _optimized_parameters(self) -> list[nn.Parameter]:
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        if not optimizers:
            return list(self.parameters())
        return [p for group in optimizers[0].param_groups for p in group["params"]]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """`train/grad_norm` on logging steps (a step the divergence guard skipped has no gradients left)."""
        if logging_step(self.trainer) and any(p.grad is not None for p in self.parameters()):
            self.log("train/grad_norm", self.gradient_norm())

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm=None
    ) -> None:
        """Clip by norm with the norm this step already has; on a CPU, where reading it costs nothing, the rescale
        pass is skipped when its factor would be exactly 1 (the result is the same bits)."""
        norm = self._gradient_norm
        plain = norm is not None and type(norm) is torch.Tensor and self._plain_precision()
        if not gradient_clip_val or gradient_clip_algorithm not in (None, "norm") or not plain:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        if norm.device.type == "cpu" and float(gradient_clip_val / (norm + 1e-6)) >= 1.0:
            return  # torch.nn.utils.clip_grads_with_norm_ would multiply every gradient by 1.0
        torch.nn.utils.clip_grads_with_norm_(self._optimized_parameters(), gradient_clip_val, norm)

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
