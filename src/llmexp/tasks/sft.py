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
from llmexp.tasks.causal_lm import CausalLMTask, OptimizerFactory, SchedulerFactory
from llmexp.tokenizer import ChatTemplate, Tokenizer

log = logging.getLogger(__name__)


def packed_forward(
    model: nn.Module, input_ids: torch.Tensor, segment_ids: torch.Tensor, position_ids: torch.Tensor
) -> torch.Tensor:
    """GPT logits for rows holding several examples: each token attends only to earlier tokens of its own example.

    The GPT forward takes a padding mask only, so this runs its parts with a block-diagonal causal mask
    [B, 1, T, T]; positions restart at each example, as if every example were alone.
    """
    x = model.wte(input_ids)
    if model.wpe is not None:
        x = x + model.wpe(position_ids)
    elif getattr(model, "sin_table", None) is not None:  # pos_emb=sinusoidal
        x = x + model.sin_table[position_ids]
    x = model.drop(x)
    rope = model.rope(position_ids) if model.rope is not None else None
    seq = input_ids.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=input_ids.device).tril()
    mask = (segment_ids[:, :, None] == segment_ids[:, None, :]) & causal
    for block in model.blocks:
        x = block(x, rope, mask.unsqueeze(1))
    return model.lm_head(model.norm_f(x))


class AdaptedCausalLMTask(CausalLMTask):
    """Next-token prediction on every token (continued pretraining / domain adaptation) with an adapter."""

    task_name = "continued_pretraining"

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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["llmexp"] = self.checkpoint_metadata()

    def merged_model(self) -> nn.Module:
        """The model with adapters folded in (the model itself when the adapter adds no layers)."""
        return self.adapter.merged(self.model)

    def on_train_end(self) -> None:
        if not self.adapter.adds_layers or self.tokenizer is None or not self.trainer.is_global_zero:
            return
        path = Path(self.trainer.default_root_dir) / "checkpoints" / "merged.ckpt"
        save_inference_checkpoint(path, self.merged_model(), self.tokenizer, self.checkpoint_metadata())
        log.info("adapters merged into the base weights: %s", path)
        print(f"Merged weights (for generate/serve/export): {path}")


class SFTTask(AdaptedCausalLMTask):
    """Loss on response tokens only (labels -100 elsewhere); packed rows keep attention inside each example."""

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
        if "segment_ids" in batch:
            return packed_forward(self.model, batch["input_ids"], batch["segment_ids"], batch["position_ids"])
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
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/response_tokens", count.float())
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        total, count = self.response_loss(batch)
        if count > 0:
            self.val_loss.update(total / count, weight=count)

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()
        self.log_dict({"val/loss": loss, "val/ppl": torch.exp(loss.clamp(max=math.log(1e6)))}, prog_bar=True)
        self.val_loss.reset()
