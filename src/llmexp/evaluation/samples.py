"""What one task measured: its scores, one record per item (lm-eval's --log_samples: the prompt, the choices or
references, the model's log-likelihoods or generation, whether it was right) and where its data came from."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskResult:
    scores: dict[str, float]
    samples: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # files, split, few-shot source, counts


def mean_and_stderr(name: str, values: list[float]) -> dict[str, float]:
    """`name` and `name_stderr` (sample standard deviation / sqrt(n), as lm-eval's mean_stderr; 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {name: mean, f"{name}_stderr": spread / math.sqrt(n)}


def write_samples(folder: Path, task: str, samples: list[dict[str, Any]]) -> Path | None:
    """<folder>/<task>.jsonl, one item per line; None when the task kept no per-item records."""
    if not samples:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task.replace(':', '_')}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(sample, ensure_ascii=False, default=str) + "\n")
    return path
