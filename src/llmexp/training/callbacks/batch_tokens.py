"""How many tokens a batch holds, whatever the task calls its inputs (input_ids; chosen_/rejected_input_ids of DPO;
decoder_input_ids of seq2seq count as the targets they are)."""

from __future__ import annotations

import torch


def batch_tokens(batch: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(tokens, rows, longest row) over every `*input_ids` tensor of the batch except decoder inputs."""
    inputs = [v for k, v in batch.items() if k.endswith("input_ids") and not k.startswith("decoder")]
    if not inputs:
        return 0, 0, 0
    return sum(t.numel() for t in inputs), sum(t.shape[0] for t in inputs), max(t.shape[1] for t in inputs)
