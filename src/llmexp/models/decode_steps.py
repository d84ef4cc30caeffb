"""The model side of a running batch (`llmexp.models.generation.RunningBatch`): how a family reads the prompts of
rows that join, takes one token per row per step, and drops rows that leave. With a KV cache, rows that joined at
different times keep their own lengths in it (`llmexp.models.layers.RowCache`); without one (a check that the cache
changes nothing), every step re-reads every row whole, so all rows must join at once."""

from __future__ import annotations

import torch
from torch import nn


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths as one [B, T] tensor padded on the left, plus the mask of real tokens."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long, device=device)
            mask[row, width - len(prompt) :] = 1
    return ids, mask


class BatchSteps:
    """What both kinds share: the KV cache the rows write into (joining rows bring their own, appended to it), or,
    without a cache, the per-row tensors (`uncached`) that every step re-reads."""

    uncached: tuple[str, ...] = ()

    def __init__(self, model: nn.Module, use_cache: bool, device: torch.device):
        self.model, self.use_cache, self.device = model, use_cache, device
        self.clear()

    def clear(self) -> None:
        self.cache = None
        for name in self.uncached:
            setattr(self, name, None)

    def check_first_join(self) -> None:
        if getattr(self, self.uncached[0]) is not None:
            raise ValueError("rows join a running batch only with the KV cache (use_cache=True)")

    def add(self, cache) -> None:
        if self.cache is None:
            self.cache = cache
        else:
            self.cache.extend(cache)

    def keep(self, rows: list[int]) -> None:
        """Keep these rows, in this order (none: the batch is empty)."""
        if not rows:
            self.clear()
        elif self.use_cache:
            self.cache.keep(rows)
        else:
            index = torch.tensor(rows, device=self.device)
            for name in self.uncached:
                setattr(self, name, getattr(self, name)[index])


class DecoderOnlySteps(BatchSteps):
    """A decoder-only model: prompts that join together are read at once (left-padded), then every row takes one
    token per step."""

    uncached = ("ids", "mask")
    padded = False

    def join(self, prompts: list[list[int]], limits: list[int], pad_id: int) -> torch.Tensor:
        """Read the prompts; the logits of their last tokens [n, V]."""
        ids, mask = left_pad(prompts, pad_id, self.device)
        padded = not bool(mask.all())
        if not self.use_cache:
            self.check_first_join()
            self.ids, self.mask, self.padded = ids, mask, padded
            return self.model(ids, attention_mask=mask if padded else None)[:, -1]
        cache = self.model.new_cache(len(prompts), ids.shape[1] + max(limits))
        # With a cache, the prompt's padding stays recorded in it, so later steps need no mask.
        logits = self.model(ids, attention_mask=mask if padded else None, cache=cache)[:, -1]
        self.add(cache)
        return logits

    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; the logits of what follows [B, V]."""
        if self.use_cache:
            return self.model(next_ids.unsqueeze(1), cache=self.cache)[:, -1]
        self.ids = torch.cat([self.ids, next_ids.unsqueeze(1)], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(next_ids).unsqueeze(1)], dim=1)
        return self.model(self.ids, attention_mask=self.mask if self.padded else None)[:, -1]


class EncoderDecoderSteps(BatchSteps):
    """An encoder-decoder: each joining prompt is encoded once, and its row decodes from the start token (T5: the
    pad id)."""

    uncached = ("decoded", "memory", "mask")

    def join(self, prompts: list[list[int]], limits: list[int], pad_id: int) -> torch.Tensor:
        start = self.model.config.pad_token_id
        ids, mask = left_pad(prompts, start, self.device)
        memory = self.model.encode(ids, mask)
        first = torch.full((len(prompts), 1), start, dtype=torch.long, device=self.device)
        if not self.use_cache:
            self.check_first_join()
            self.memory, self.mask, self.decoded = memory, mask, first
            return self.model.decode(first, memory, mask)[:, -1]
        cache = self.model.new_cache(memory, max(limits) + 1, memory_mask=mask)
        logits = self.model.decode(first, None, mask, cache=cache)[:, -1]
        self.add(cache)
        return logits

    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        if self.use_cache:
            return self.model.decode(next_ids.unsqueeze(1), None, self.cache.memory_mask, cache=self.cache)[:, -1]
        self.decoded = torch.cat([self.decoded, next_ids.unsqueeze(1)], dim=1)
        return self.model.decode(self.decoded, self.memory, self.mask)[:, -1]
