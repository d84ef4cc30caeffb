"""Sequence-to-sequence learning (T5 span corruption, or any input -> target pairs)."""

from __future__ import annotations

import torch

from llmexp.tasks.masked_lm import MaskedLMTask


class Seq2SeqTask(MaskedLMTask):
    """Cross-entropy of the decoder over the target tokens (labels -100 on padding); the encoder reads the input."""

    objective = "seq2seq"
    accepts = ("span_corruption",)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(
            batch["input_ids"], attention_mask=batch.get("attention_mask"), decoder_input_ids=batch["decoder_input_ids"]
        )
