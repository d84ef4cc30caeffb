"""Few-shot prompts drawn and written exactly as lm-evaluation-harness draws and writes them, so k-shot scores are
comparable item for item: one `random.Random(seed)` per task (per subject for MMLU), advanced item by item in scoring
order; `rng.sample(pool, k)`, or, where lm-eval leaves the scored item out of its own draw, `rng.sample(pool, k + 1)`
minus the item, first k; lm-eval's `first_n` sampler takes the first k in file order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from llmexp.errors import DataError
from llmexp.evaluation.benchmarks import GenExample, MCExample

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"

Example = MCExample | GenExample


class FewshotSampler:
    """lm-eval's ContextSampler (`default`) and FirstNSampler over one pool of rows; rows compare as whole documents."""

    def __init__(self, pool: Sequence[dict[str, Any]], seed: int, exclude_self: bool, first_n: bool = False):
        self.pool, self.rng = list(pool), random.Random(seed)
        self.exclude_self, self.first_n = exclude_self, first_n

    def draw(self, k: int, row: dict[str, Any]) -> list[int]:
        """Pool indices of the k examples shown before the item `row`."""
        if k == 0:
            return []
        if self.first_n:
            kept = [i for i, other in enumerate(self.pool) if not (self.exclude_self and other == row)]
            return kept[:k] if k <= len(kept) else self._too_few(k, len(kept))
        needed = k + 1 if self.exclude_self else k
        if needed > len(self.pool):
            return self._too_few(needed, len(self.pool))
        if not self.exclude_self:
            return self.rng.sample(range(len(self.pool)), k)
        drawn = [i for i in self.rng.sample(range(len(self.pool)), k + 1) if self.pool[i] != row][:k]
        if len(drawn) < k:  # the pool holds copies of the item: draw again from the rest, as lm-eval does
            drawn = self.rng.sample([i for i, other in enumerate(self.pool) if other != row], k)
        return drawn

    @staticmethod
    def _too_few(needed: int, available: int) -> list[int]:
        raise DataError(f"few-shot: {needed} examples needed per item, the few-shot pool has {available}")


class Demonstrations:
    """The few-shot examples of a task: one sampler per value of `group_field` (lm-eval runs each MMLU subject as a
    task of its own), each seeded with the same seed."""

    def __init__(
        self,
        rows: Sequence[dict[str, Any]],
        examples: Sequence[Example],
        seed: int,
        exclude_self: bool,
        first_n: bool = False,
        group_field: str | None = None,
    ):
        self.examples, self.group_field = list(examples), group_field
        groups: dict[Any, list[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault(row.get(group_field) if group_field else None, []).append(index)
        self.samplers = {
            key: (indices, FewshotSampler([rows[i] for i in indices], seed, exclude_self, first_n))
            for key, indices in groups.items()
        }

    def for_item(self, k: int, row: dict[str, Any]) -> list[Example]:
        key = row.get(self.group_field) if self.group_field else None
        if key not in self.samplers:
            raise DataError(f"few-shot: no examples with {self.group_field}={key!r} in the few-shot pool")
        indices, sampler = self.samplers[key]
        return [self.examples[indices[j]] for j in sampler.draw(k, row)]


def question(example: Example) -> str:
    return example.query if isinstance(example, MCExample) else example.prompt


def solved(example: Example) -> str:
    """An example with its answer: the gold choice, or the demonstration answer of a generation task."""
    answer = example.choices[example.gold] if isinstance(example, MCExample) else example.solved
    return question(example) + TARGET_DELIMITER + answer


def context(example: Example, shots: Sequence[Example] = ()) -> str:
    """description + each solved example and a blank line + the question (lm-eval's plain-text prompt)."""
    description = example.description if isinstance(example, MCExample) else ""
    return description + "".join(solved(s) + FEWSHOT_DELIMITER for s in shots) + question(example)


def contexts(
    examples: Sequence[Example], rows: Sequence[dict[str, Any]], demonstrations: Demonstrations | None, k: int
) -> list[str]:
    """The prompt of every scored item, drawn in scoring order (the order is part of the seed's meaning)."""
    if k == 0 or demonstrations is None:
        return [context(example) for example in examples]
    return [context(ex, demonstrations.for_item(k, row)) for ex, row in zip(examples, rows, strict=True)]
