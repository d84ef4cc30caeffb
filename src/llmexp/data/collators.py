"""Batch makers for the non-causal objectives: BERT's masked LM and T5's span corruption.

Each is built with the tokenizer (`collator(tokenizer=...)`, by the DataModule once the tokenizer exists) and turns a
list of `{"input_ids": [T]}` items into a model batch. Labels are -100 where there is nothing to predict.
"""

from __future__ import annotations

import torch

from llmexp.errors import ConfigError
from llmexp.tokenizer import Tokenizer

IGNORE = -100


def _token_id(tokenizer: Tokenizer, token: str, key: str) -> int:
    token_id = tokenizer.backend.token_to_id(token)
    if token_id is None:
        raise ConfigError(f"{key}={token!r} is not in the tokenizer; add it to tokenizer.special_tokens")
    return token_id


def _stack(items: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    return torch.stack([torch.as_tensor(item["input_ids"], dtype=torch.long) for item in items])


class MaskedLMCollator:
    """BERT's masking: pick `mask_prob` of the non-special tokens; of those, 80% become the mask token, 10% a random
    token and 10% stay as they are. Only picked tokens are predicted."""

    batch_kind = "masked_lm"

    def __init__(
        self,
        tokenizer: Tokenizer,
        mask_prob: float = 0.15,
        mask_token: str = "<mask>",
        replace_with_mask: float = 0.8,
        replace_with_random: float = 0.1,
    ):
        if not 0.0 < mask_prob < 1.0:
            raise ConfigError(f"data.collator.mask_prob={mask_prob} must be in (0, 1)")
        if replace_with_mask < 0 or replace_with_random < 0 or replace_with_mask + replace_with_random > 1:
            raise ConfigError(
                f"data.collator.replace_with_mask={replace_with_mask} and replace_with_random={replace_with_random} "
                "must be >= 0 and sum to at most 1"
            )
        self.mask_prob, self.p_mask, self.p_random = mask_prob, replace_with_mask, replace_with_random
        self.mask_id = _token_id(tokenizer, mask_token, "data.collator.mask_token")
        self.vocab_size = tokenizer.vocab_size
        special = [t.content for t in tokenizer.backend.get_added_tokens_decoder().values() if t.special]
        self.special_ids = torch.tensor(sorted(tokenizer.backend.token_to_id(t) for t in special), dtype=torch.long)

    def mask(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(corrupted inputs, labels) for a [B, T] batch of token ids."""
        draw = torch.rand(ids.shape, generator=generator)
        picked = (draw < self.mask_prob) & ~torch.isin(ids, self.special_ids)
        labels = torch.where(picked, ids, IGNORE)
        action = torch.rand(ids.shape, generator=generator)
        to_mask = picked & (action < self.p_mask)
        to_random = picked & (action >= self.p_mask) & (action < self.p_mask + self.p_random)
        random_ids = torch.randint(self.vocab_size, ids.shape, generator=generator)
        inputs = torch.where(to_mask, self.mask_id, ids)
        return torch.where(to_random, random_ids, inputs), labels

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        inputs, labels = self.mask(_stack(items))
        return {"input_ids": inputs, "labels": labels, "attention_mask": torch.ones_like(inputs)}


def random_segmentation(n_items: int, n_segments: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lengths of `n_segments` non-empty pieces that add up to `n_items`, cut at random places."""
    cuts = torch.randperm(n_items - 1, generator=generator)[: n_segments - 1] + 1
    edges = torch.cat([torch.tensor([0]), cuts.sort().values, torch.tensor([n_items])])
    return edges.diff()


def span_noise_mask(length: int, density: float, mean_span: float, generator=None) -> torch.Tensor:
    """Boolean [length] noise mask of T5: round(length * density) noise tokens in spans of `mean_span` on average,
    alternating with non-noise spans (starting with non-noise)."""
    n_noise = min(max(round(length * density), 1), length - 1)
    n_spans = max(1, min(round(n_noise / mean_span), n_noise, length - n_noise))
    noise = random_segmentation(n_noise, n_spans, generator)
    keep = random_segmentation(length - n_noise, n_spans, generator)
    flags = torch.stack([torch.zeros(n_spans, dtype=torch.bool), torch.ones(n_spans, dtype=torch.bool)], 1).flatten()
    return flags.repeat_interleave(torch.stack([keep, noise], 1).flatten())


class SpanCorruptionCollator:
    """T5's span corruption: noise spans become one sentinel each in the input; the target lists each sentinel and
    the tokens it hid. Both end with EOS. Batches are padded with the pad token (labels with -100), and
    `decoder_input_ids` are the labels shifted right after the start token (the pad token, as in T5)."""

    batch_kind = "span_corruption"

    def __init__(
        self,
        tokenizer: Tokenizer,
        noise_density: float = 0.15,
        mean_span_length: float = 3.0,
        pad_token: str = "<pad>",
        sentinel_format: str = "<extra_id_{}>",
    ):
        if not 0.0 < noise_density < 1.0 or mean_span_length < 1.0:
            raise ConfigError(
                f"data.collator.noise_density={noise_density} must be in (0, 1) and "
                f"mean_span_length={mean_span_length} >= 1"
            )
        self.density, self.mean_span = noise_density, mean_span_length
        self.pad_id = _token_id(tokenizer, pad_token, "data.collator.pad_token")
        self.eos_id = tokenizer.eos_id
        self.sentinels: list[int] = []
        while (found := tokenizer.backend.token_to_id(sentinel_format.format(len(self.sentinels)))) is not None:
            self.sentinels.append(found)
        if not self.sentinels:
            raise ConfigError(f"the tokenizer has no sentinel {sentinel_format.format(0)!r}; add them to its specials")

    def corrupt(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
        """(encoder input, target) token lists for one sequence."""
        noise = span_noise_mask(len(ids), self.density, self.mean_span, generator)
        starts = noise & ~torch.cat([torch.tensor([False]), noise[:-1]])
        n_spans = int(starts.sum())
        if n_spans > len(self.sentinels):
            raise ConfigError(
                f"{n_spans} noise spans in a block of {len(ids)} tokens but the tokenizer has {len(self.sentinels)} "
                "sentinels; lower data.block_size or add sentinel tokens"
            )
        inputs, targets, span = [], [], -1
        for token, is_noise, is_start in zip(ids.tolist(), noise.tolist(), starts.tolist(), strict=True):
            if is_start:
                span += 1
                inputs.append(self.sentinels[span])
                targets.append(self.sentinels[span])
            (targets if is_noise else inputs).append(token)
        return [*inputs, self.eos_id], [*targets, self.eos_id]

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        pairs = [self.corrupt(torch.as_tensor(item["input_ids"], dtype=torch.long)) for item in items]
        width_in, width_out = max(len(i) for i, _ in pairs), max(len(t) for _, t in pairs)
        batch = len(pairs)
        input_ids = torch.full((batch, width_in), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, width_in), dtype=torch.long)
        labels = torch.full((batch, width_out), IGNORE, dtype=torch.long)
        for row, (inp, tgt) in enumerate(pairs):
            input_ids[row, : len(inp)] = torch.tensor(inp)
            attention_mask[row, : len(inp)] = 1
            labels[row, : len(tgt)] = torch.tensor(tgt)
        decoder_input_ids = torch.cat([torch.full((batch, 1), self.pad_id), labels[:, :-1]], dim=1)
        decoder_input_ids = decoder_input_ids.masked_fill(decoder_input_ids == IGNORE, self.pad_id)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "decoder_input_ids": decoder_input_ids,
        }
