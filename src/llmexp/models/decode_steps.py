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


class DecoderOnlySteps:
    """The model side of a running batch of a decoder-only model: prompts that join together are read at once
    (left-padded), then every row takes one token per step."""

    def __init__(self, model: nn.Module, use_cache: bool, device: torch.device):
        self.model, self.use_cache, self.device = model, use_cache, device
        self.cache = None
        self.ids = self.mask = None  # without a cache: every row's whole sequence, re-read at every step
        self.padded = False

    def join(self, prompts: list[list[int]], limits: list[int], pad_id: int) -> torch.Tensor:
        """Read the prompts; the logits of their last tokens [n, V]."""
        ids, mask = left_pad(prompts, pad_id, self.device)
        padded = not bool(mask.all())
        if not self.use_cache:
            if self.ids is not None:
                raise ValueError("rows join a running batch only with the KV cache (use_cache=True)")
            self.ids, self.mask, self.padded = ids, mask, padded
            return self.model(ids, attention_mask=mask if padded else None)[:, -1]
        cache = self.model.new_cache(len(prompts), ids.shape[1] + max(limits))
        logits = self.model(ids, attention_mask=mask if padded else None, cache=cache)[:, -1]
        # With a cache, the prompt's padding stays recorded in it, so later steps need no mask.
        if self.cache is None:
            self.cache = cache
        else:
            self.cache.extend(cache)
        return logits

    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; the logits of what follows [B, V]."""
        if self.use_cache:
            return self.model(next_ids.unsqueeze(1), cache=self.cache)[:, -1]
        self.ids = torch.cat([self.ids, next_ids.unsqueeze(1)], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(next_ids).unsqueeze(1)], dim=1)
        return self.model(self.ids, attention_mask=self.mask if self.padded else None)[:, -1]

    def keep(self, rows: list[int]) -> None:
        if not rows:
            self.cache = self.ids = self.mask = None
        elif self.use_cache:
            self.cache.keep(rows)
        else:
            index = torch.tensor(rows, device=self.device)
            self.ids, self.mask = self.ids[index], self.mask[index]


class EncoderDecoderSteps:
    """The model side of a running batch of an encoder-decoder: each joining prompt is encoded once, and its row
    decodes from the start token (T5: the pad id)."""

    def __init__(self, model: nn.Module, use_cache: bool, device: torch.device):
        self.model, self.use_cache, self.device = model, use_cache, device
        self.start = model.config.pad_token_id
        self.cache = None
        self.memory = self.mask = self.decoded = None  # without a cache

    def join(self, prompts: list[list[int]], limits: list[int], pad_id: int) -> torch.Tensor:
        ids, mask = left_pad(prompts, self.start, self.device)
        memory = self.model.encode(ids, mask)
        first = torch.full((len(prompts), 1), self.start, dtype=torch.long, device=self.device)
        if not self.use_cache:
            if self.decoded is not None:
                raise ValueError("rows join a running batch only with the KV cache (use_cache=True)")
            self.memory, self.mask, self.decoded = memory, mask, first
            return self.model.decode(first, memory, mask)[:, -1]
        cache = self.model.new_cache(memory, max(limits) + 1, memory_mask=mask)
        logits = self.model.decode(first, None, mask, cache=cache)[:, -1]
        if self.cache is None:
            self.cache = cache
        else:
            self.cache.extend(cache)
        return logits

    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        if self.use_cache:
            return self.model.decode(next_ids.unsqueeze(1), None, self.cache.memory_mask, cache=self.cache)[:, -1]
        self.decoded = torch.cat([self.decoded, next_ids.unsqueeze(1)], dim=1)
        return self.model.decode(self.decoded, self.memory, self.mask)[:, -1]

    def keep(self, rows: list[int]) -> None:
        if not rows:
            self.cache = self.memory = self.mask = self.decoded = None
        elif self.use_cache:
            self.cache.keep(rows)
        else:
            index = torch.tensor(rows, device=self.device)
            self.memory, self.mask, self.decoded = self.memory[index], self.mask[index], self.decoded[index]
