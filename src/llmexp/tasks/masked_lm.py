"""Masked language modelling (BERT): predict the picked tokens only; labels are -100 everywhere else."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import SumMetric

from llmexp.tasks.causal_lm import CausalLMTask

IGNORE = -100


class MaskedLMTask(CausalLMTask):
    """The objective of a batch with sparse labels: mean cross-entropy over labelled positions. Optimizer wiring and
    checkpoint metadata are the causal task's. Metrics: loss and perplexity over predicted tokens."""

    objective = "masked_lm"
    accepts = ("masked_lm",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.val_count = SumMetric()

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch["input_ids"], attention_mask=batch.get("attention_mask"))

    def summed_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed negative log-likelihood, number of predicted tokens)."""
        labels = batch["labels"]
        logits = self.logits(batch)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        return nll, (labels != IGNORE).sum()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        nll, count = self.summed_loss(batch)
        loss = nll / count.clamp(min=1)
        step_loss, tokens = loss.detach(), batch["input_ids"].numel() * self.trainer.world_size
        self.log_train_step(lambda: {"train/loss": step_loss, "train/tokens": float((self.global_step + 1) * tokens)})
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        nll, count = self.summed_loss(batch)
        self.val_nats.update(nll)
        self.val_count.update(count)

    def on_validation_epoch_end(self) -> None:
        loss = self.val_nats.compute() / self.val_count.compute().clamp(min=1)
        self.log_dict({"val/loss": loss, "val/ppl": torch.exp(loss)}, prog_bar=True, sync_dist=False)
        self.val_nats.reset()
        self.val_count.reset()
