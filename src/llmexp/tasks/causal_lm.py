"""Causal language modelling: predict every next token."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.text import Perplexity

from llmexp.tasks.base import OptimizerFactory, SchedulerFactory, Task
from llmexp.tokenizer import Tokenizer


class CausalLMTask(Task):
    """Owns the next-token objective and its metrics (loss, perplexity, bits per byte)."""

    objective = "causal_lm"
    accepts = ("token_blocks",)

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        tokenizer: Tokenizer | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(model, optimizer, scheduler, metadata)
        # Bytes per token turn nats per token into bits per byte; without a tokenizer every token counts as one byte.
        token_bytes = (
            torch.from_numpy(tokenizer.token_bytes())
            if tokenizer is not None
            else torch.ones(model.config.vocab_size, dtype=torch.int32)
        )
        self.register_buffer("token_bytes", token_bytes, persistent=False)
        self.val_ppl = Perplexity()
        self.val_loss = MeanMetric()
        self.val_nats = SumMetric()
        self.val_bytes = SumMetric()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(batch["input_ids"])
        per_token = F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), reduction="none")
        return per_token.view_as(batch["labels"]), logits

    def bits_per_byte(self, per_token_nll: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(nats, bytes) over tokens that stand for text; special tokens carry no bytes and are left out of both."""
        nbytes = self.token_bytes[labels]
        counted = nbytes > 0
        return (per_token_nll * counted).sum(), nbytes.sum()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        per_token, _ = self._loss(batch)
        loss = per_token.mean()
        self.log_train_step(functools.partial(self.step_metrics, loss.detach(), per_token.detach(), batch["labels"]))
        return loss

    def step_metrics(self, loss: torch.Tensor, per_token: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        nats, nbytes = self.bits_per_byte(per_token, labels)
        return {
            "train/loss": loss,
            "train/bpb": nats / (math.log(2) * nbytes.clamp(min=1)),
            "train/tokens": float((self.global_step + 1) * labels.numel() * self.trainer.world_size),
        }

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        per_token, logits = self._loss(batch)
        nats, nbytes = self.bits_per_byte(per_token, batch["labels"])
        self.val_loss.update(per_token.mean(), weight=per_token.numel())
        self.val_ppl.update(logits.float(), batch["labels"])
        self.val_nats.update(nats)
        self.val_bytes.update(nbytes)

    def on_validation_epoch_end(self) -> None:
        # Metrics are synced across ranks by torchmetrics when computed.
        bpb = self.val_nats.compute() / (math.log(2) * self.val_bytes.compute().clamp(min=1))
        self.log_dict(
            {"val/loss": self.val_loss.compute(), "val/ppl": self.val_ppl.compute(), "val/bpb": bpb},
            prog_bar=True,
            sync_dist=False,
        )
        for metric in (self.val_loss, self.val_ppl, self.val_nats, self.val_bytes):
            metric.reset()
