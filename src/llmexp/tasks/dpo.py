"""Direct preference optimisation (Rafailov et al. 2023): raise the policy's log-probability of the chosen reply over
the rejected one, relative to a frozen reference (the model as the run started), without a reward model.

loss = -log sigmoid(beta * [(log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))])

The reference is a frozen copy kept outside the module tree (not trained, not sharded, not in the optimizer); its
weights travel in each checkpoint, so a resumed run compares against the same reference. The chat template and the
adapters (LoRA, freezing) work as in SFT, and a LoRA run also writes merged.ckpt.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from llmexp.data.sft import IGNORE
from llmexp.finetune.adapters import Adapter
from llmexp.tasks.base import OptimizerFactory, SchedulerFactory
from llmexp.tasks.sft import SFTTask
from llmexp.tokenizer import Tokenizer

REFERENCE_KEY = "dpo_reference"


def reply_logps(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over each row's labelled (reply) tokens: [B]."""
    logprobs = F.log_softmax(model(input_ids).float(), dim=-1)
    mask = labels != IGNORE
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=-1)


class DPOTask(SFTTask):
    """The DPO objective with rewards beta * log(pi / ref) for the chosen and the rejected reply."""

    objective = "dpo"
    accepts = ("preferences",)
    task_name = "dpo"

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        tokenizer: Tokenizer | None = None,
        metadata: dict[str, Any] | None = None,
        finetune: Adapter | None = None,
        chat_template: dict | None = None,
        beta: float = 0.1,
    ):
        reference = copy.deepcopy(model).eval().requires_grad_(False)  # before any adapter changes the policy
        super().__init__(model, optimizer, scheduler, tokenizer, metadata, finetune, chat_template)
        self.beta = beta
        self._reference = [reference]  # a list: outside the module tree (no training, sharding or optimizer state)
        self.val_metrics = nn.ModuleDict({name: MeanMetric() for name in ("loss", "reward_acc", "reward_margin")})

    @property
    def reference(self) -> nn.Module:
        return self._reference[0]

    def on_fit_start(self) -> None:
        self.reference.to(self.device)

    def preference_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per pair: the DPO loss and the chosen/rejected rewards."""
        ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
        labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
        policy = reply_logps(self.model, ids, labels)
        with torch.no_grad():
            reference = reply_logps(self.reference, ids, labels)
        rewards = self.beta * (policy - reference)
        chosen, rejected = rewards.chunk(2)
        return {"loss": -F.logsigmoid(chosen - rejected), "chosen": chosen.detach(), "rejected": rejected.detach()}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.preference_terms(batch)
        loss = terms["loss"].mean()
        self.log_train_step(functools.partial(self.step_metrics, loss.detach(), terms["chosen"], terms["rejected"]))
        return loss

    @staticmethod
    def step_metrics(loss: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "train/loss": loss,
            "train/rewards_chosen": chosen.mean(),
            "train/rewards_rejected": rejected.mean(),
            "train/reward_acc": (chosen > rejected).float().mean(),
            "train/reward_margin": (chosen - rejected).mean(),
        }

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        terms = self.preference_terms(batch)
        margin = terms["chosen"] - terms["rejected"]
        self.val_metrics["loss"].update(terms["loss"])
        self.val_metrics["reward_acc"].update((margin > 0).float())
        self.val_metrics["reward_margin"].update(margin)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{name}": metric.compute() for name, metric in self.val_metrics.items()}, prog_bar=True)
        for metric in self.val_metrics.values():
            metric.reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[REFERENCE_KEY] = {k: v.detach().cpu() for k, v in self.reference.state_dict().items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if REFERENCE_KEY in checkpoint:
            self.reference.load_state_dict(checkpoint[REFERENCE_KEY])
