"""Sequence classification: a pretrained backbone plus a linear head, trained on labelled texts (accuracy, F1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from llmexp.errors import ConfigError
from llmexp.finetune.adapters import Adapter
from llmexp.models.spec import family_of
from llmexp.tasks.base import Task
from llmexp.tokenizer import Tokenizer


class SequenceClassifier(nn.Module):
    """Backbone hidden states pooled to one vector per text, then a linear head to label logits.

    Causal families: the last real token's state, the only one that has seen the whole text. Others (BERT, T5's
    encoder): the mean of the real tokens' states. The parts of the backbone that only its LM head uses are dropped,
    so every remaining weight gets a gradient (DDP requires it).
    """

    def __init__(self, backbone: nn.Module, num_labels: int, dropout: float = 0.0):
        super().__init__()
        spec = family_of(backbone)
        self.pooling = "last" if spec.causal else "mean"
        for name in spec.head_modules:
            setattr(backbone, name, nn.Identity())
        self.backbone = backbone
        self.config = backbone.config  # for FLOPs estimates (throughput callback)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.config.n_embd, num_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "last":  # right padding is invisible to earlier tokens of a causal model
            hidden = self.backbone.hidden_states(input_ids)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths - 1]
        else:
            real = torch.arange(input_ids.shape[1], device=input_ids.device) < lengths[:, None]
            hidden = self.backbone.hidden_states(input_ids, attention_mask=real.long())
            pooled = (hidden * real.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1).clamp(min=1)
        return self.head(self.dropout(pooled))


class ClassificationTask(Task):
    """Owns the head, the cross-entropy objective and val accuracy / macro F1.

    The head is built in `setup`, once the data module knows the labels; `finetune` decides what trains.
    """

    objective = "classification"
    accepts = ("labelled_texts",)
    trains_language_model = False

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        tokenizer: Tokenizer | None = None,
        metadata: dict[str, Any] | None = None,
        finetune: Adapter | None = None,
        num_labels: int | None = None,
        label_names: list[str] | None = None,
        classifier_dropout: float = 0.0,
    ):
        super().__init__(model, optimizer, scheduler, metadata)
        self.backbone = self.model
        self.adapter = finetune or Adapter()
        self.num_labels, self.label_names = num_labels, list(label_names) if label_names else None
        self.classifier_dropout = classifier_dropout
        del self.model  # built in `setup` around the backbone, once the labels are known
        self.model: SequenceClassifier | None = None
        if num_labels is not None:
            self._build(num_labels)

    def _build(self, num_labels: int) -> None:
        backbone = self.backbone
        del self.backbone  # from here on it lives inside the classifier: one owner, one set of state-dict keys
        self.model = SequenceClassifier(backbone, num_labels, self.classifier_dropout)
        self.adapter.apply(self.model.backbone)  # the head is outside the backbone: it always trains
        self.num_labels = num_labels
        self.val_loss = MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes=num_labels, average="micro")
        self.val_f1 = MulticlassF1Score(num_classes=num_labels, average="macro")

    def setup(self, stage: str) -> None:
        if self.model is not None:
            return
        datamodule = self.trainer.datamodule
        if datamodule is None or not getattr(datamodule, "label_names", None):
            raise ConfigError("task=classification needs a data module with labels (data=classification)")
        self.label_names = list(datamodule.label_names)
        self._build(len(self.label_names))
        self.majority_baseline = datamodule.majority_accuracy("val")

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, lengths)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["input_ids"], batch["lengths"])
        loss = F.cross_entropy(logits.float(), batch["labels"])
        step_loss, step_logits, labels = loss.detach(), logits.detach(), batch["labels"]
        self.log_train_step(
            lambda: {"train/loss": step_loss, "train/acc": (step_logits.argmax(-1) == labels).float().mean()}
        )
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.model(batch["input_ids"], batch["lengths"])
        self.val_loss.update(F.cross_entropy(logits.float(), batch["labels"]), weight=batch["labels"].numel())
        self.val_acc.update(logits, batch["labels"])
        self.val_f1.update(logits, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        metrics = {
            "val/loss": self.val_loss.compute(),
            "val/acc": self.val_acc.compute(),
            "val/f1": self.val_f1.compute(),
        }
        if getattr(self, "majority_baseline", None) is not None:
            metrics["val/majority_acc"] = torch.tensor(self.majority_baseline)
        self.log_dict(metrics, prog_bar=True)
        for metric in (self.val_loss, self.val_acc, self.val_f1):
            metric.reset()

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {
            **self.metadata,
            "task": "classification",
            "label_names": self.label_names,
            "finetune": self.adapter.describe(),
        }

    def language_model(self) -> nn.Module | None:
        return None  # a classifier: nothing to sample from or score text with
