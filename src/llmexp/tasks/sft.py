"""Fine-tuning a causal LM: continued pretraining (all tokens) and instruction SFT (response tokens only).

Both take an adapter (conf/finetune: none, freeze, lora). When the adapter changes the model's structure (LoRA),
the end of training also writes `checkpoints/merged.ckpt`: plain weights with the adapters folded in, the file that
`llmexp-generate`, `llmexp-serve` and export read.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmexp.artifacts.inference import save_inference_checkpoint
from llmexp.data.sft import IGNORE
from llmexp.finetune.adapters import Adapter
from llmexp.tasks.base import OptimizerFactory, SchedulerFactory
from llmexp.tasks.causal_lm import CausalLMTask
from llmexp.tasks.full_weights import full_language_model
from llmexp.tokenizer import ChatTemplate, Tokenizer

log = logging.getLogger(__name__)


class AdaptedCausalLMTask(CausalLMTask):
    """Next-token prediction on every token (continued pretraining / domain adaptation) with an adapter."""

    objective = "finetune_lm"
    task_name = "continued_pretraining"  # what checkpoints record as their task

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        tokenizer: Tokenizer | None = None,
        metadata: dict[str, Any] | None = None,
        finetune: Adapter | None = None,
    ):
        super().__init__(model, optimizer, scheduler, tokenizer, metadata)
        self.adapter = finetune or Adapter()
        self.adapter.apply(self.model)
        self.tokenizer = tokenizer

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {**self.metadata, "task": self.task_name, "finetune": self.adapter.describe()}

    def fresh_language_model(self) -> nn.Module:
        model = super().fresh_language_model()
        if self.adapter.adds_layers:
            self.adapter.fresh().apply(model)
        return model

    def on_train_end(self) -> None:
        """With adapters that add layers (LoRA): write the merged weights. Every rank takes part (sharded weights
        are gathered first); rank 0 writes."""
        if not self.adapter.adds_layers or self.tokenizer is None:
            return
        path = Path(self.trainer.default_root_dir) / "checkpoints" / "merged.ckpt"
        with full_language_model(self.trainer, self) as model:
            if model is not None:
                save_inference_checkpoint(path, self.adapter.merged(model), self.tokenizer, self.checkpoint_metadata())
                log.info("adapters merged into the base weights: %s", path)
                print(f"Merged weights (for generate/serve/export): {path}")


class SFTTask(AdaptedCausalLMTask):
    """Loss on response tokens only (labels -100 elsewhere); packed rows keep attention inside each example."""

    objective = "sft"
    accepts = ("instructions",)
    task_name = "sft"

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        tokenizer: Tokenizer | None = None,
        metadata: dict[str, Any] | None = None,
        finetune: Adapter | None = None,
        chat_template: dict | None = None,
    ):
        super().__init__(model, optimizer, scheduler, tokenizer, metadata, finetune)
        self.chat_template = ChatTemplate.from_dict(chat_template) if chat_template else None

    def setup(self, stage: str) -> None:
        if self.chat_template is None:
            datamodule = self.trainer.datamodule if self.trainer is not None else None
            self.chat_template = getattr(datamodule, "template", None) or ChatTemplate()

    def checkpoint_metadata(self) -> dict[str, Any]:
        template = self.chat_template or ChatTemplate()
        return {**super().checkpoint_metadata(), "chat_template": template.to_dict()}

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "segment_ids" in batch:  # packed rows: the model keeps attention and positions inside each example
            return self.model(batch["input_ids"], position_ids=batch["position_ids"], segment_ids=batch["segment_ids"])
        return self.model(batch["input_ids"])

    def response_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss over response tokens, number of response tokens)."""
        logits = self.logits(batch)
        labels = batch["labels"]
        total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        return total, (labels != IGNORE).sum()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        total, count = self.response_loss(batch)
        loss = total / count.clamp(min=1)
        step_loss = loss.detach()
        self.log_train_step(lambda: {"train/loss": step_loss, "train/response_tokens": count.float()})
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        total, count = self.response_loss(batch)
        if count > 0:
            self.val_loss.update(total / count, weight=count)

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()
        self.log_dict({"val/loss": loss, "val/ppl": torch.exp(loss.clamp(max=math.log(1e6)))}, prog_bar=True)
        self.val_loss.reset()
