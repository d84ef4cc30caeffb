"""Parameter groups for the optimizer, and the optimizer/scheduler pair every task hands to Lightning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor

FUSED_DEVICES = ("cpu", "cuda")


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


def fused_by_default(optimizer_factory: Callable[..., Any], params: list[nn.Parameter]) -> bool:
    """Whether to ask an Adam-family optimizer for its fused kernel where the config leaves the choice to torch
    (`fused` and `foreach` null): torch then picks a per-tensor loop on CPUs, ~3x slower than the fused kernel.
    Only plain (unsharded) float tensors on devices with the kernel qualify."""
    keywords = getattr(optimizer_factory, "keywords", {})
    target = getattr(optimizer_factory, "func", None)
    if target not in (torch.optim.AdamW, torch.optim.Adam) or any(
        keywords.get(k) is not None for k in ("fused", "foreach")
    ):
        return False
    return bool(params) and all(
        not isinstance(p, DTensor) and p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params
    )


def configure_optimization(
    model: nn.Module,
    optimizer_factory: Callable[..., Any],
    scheduler_factory: Callable[..., Any] | None,
    total_steps: int,
    fused_allowed: bool = False,
) -> dict[str, Any]:
    """Lightning's `configure_optimizers` answer: the configured optimizer over decay groups, the schedule per step.

    The weight decay comes from the optimizer's partial config (`optimizer.weight_decay`) and goes to matrices only.
    `fused_allowed`: the precision and strategy let a fused kernel do the update (see `fused_by_default`)."""
    weight_decay = getattr(optimizer_factory, "keywords", {}).get("weight_decay", 0.0)
    groups = weight_decay_groups(model, weight_decay)
    params = [p for group in groups for p in group["params"]]
    fused = fused_allowed and fused_by_default(optimizer_factory, params)
    optimizer = optimizer_factory(groups, fused=True) if fused else optimizer_factory(groups)
    if scheduler_factory is None:
        return {"optimizer": optimizer}
    scheduler = scheduler_factory(optimizer, total_steps=total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
