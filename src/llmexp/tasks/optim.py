"""Parameter groups for the optimizer, and the optimizer/scheduler pair every task hands to Lightning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (linear and embedding weights); never norms, biases or other 1-D parameters.

    Tied weights appear once (named_parameters deduplicates them).
    """
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def configure_optimization(
    model: nn.Module,
    optimizer_factory: Callable[..., Any],
    scheduler_factory: Callable[..., Any] | None,
    total_steps: int,
) -> dict[str, Any]:
    """Lightning's `configure_optimizers` answer: the configured optimizer over decay groups, the schedule per step.

    The weight decay comes from the optimizer's partial config (`optimizer.weight_decay`) and goes to matrices only."""
    weight_decay = getattr(optimizer_factory, "keywords", {}).get("weight_decay", 0.0)
    optimizer = optimizer_factory(weight_decay_groups(model, weight_decay))
    if scheduler_factory is None:
        return {"optimizer": optimizer}
    scheduler = scheduler_factory(optimizer, total_steps=total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
