"""A full, unsharded copy of the task's language model on rank 0, for whatever runs the model outside a training
step (samples, periodic and final evals, the merged LoRA export).

Under a sharded strategy no rank holds the whole model: running rank 0's shard alone deadlocks (the others never
join its all-gathers) or mixes DTensors with plain tensors. So every rank takes part in gathering the full weights
(one collective per strategy), rank 0 loads them into a fresh copy, and the other ranks wait at a barrier until it
is done. Unsharded strategies (single device, DDP) hand rank 0 the live model itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from torch import nn

from llmexp.tasks.base import Task


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _gather_full_state(trainer: L.Trainer, model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The full state dict of `model` on rank 0 (None elsewhere), or None on every rank when nothing is sharded."""
    strategy = trainer.strategy
    if isinstance(strategy, ModelParallelStrategy):  # fsdp2: DTensor parameters
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)
    if isinstance(strategy, FSDPStrategy):  # FSDP1 wraps the LightningModule: its keys start with "model."
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        config = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
        with FSDP.state_dict_type(strategy.model, StateDictType.FULL_STATE_DICT, config):
            return _strip(strategy.model.state_dict(), "model.")
    if isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3:
        state = strategy.deepspeed_engine._zero3_consolidated_16bit_state_dict()
        return _strip(state, "model.") if state is not None else {}
    return None


@contextmanager
def full_language_model(trainer: L.Trainer, task: Task) -> Iterator[nn.Module | None]:
    """Yield the task's language model with full weights on rank 0 and None on every other rank (and None everywhere
    when the task has no language model). Every rank must enter; all leave together."""
    model = task.language_model()
    if model is None:
        yield None
        return
    state = _gather_full_state(trainer, model)
    try:
        if not trainer.is_global_zero:
            yield None
        elif state is None:
            yield model
        else:
            copy = task.fresh_language_model()
            copy.load_state_dict(state)  # into fp32 parameters, whatever precision training kept
            yield copy.to(trainer.strategy.root_device).eval()
    finally:
        trainer.strategy.barrier("full_language_model")
