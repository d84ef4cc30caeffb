"""Build the Lightning Trainer from the trainer, strategy, logger and callbacks config groups."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.strategies import Strategy
from omegaconf import DictConfig
from torch import nn

from llmexp.artifacts.checkpoint import AtomicCheckpointIO
from llmexp.config.hardware import check_precision
from llmexp.training.elastic import DataLayout
from llmexp.training.strategies import build_strategy


def resolve_precision(precision: str | int, accelerator: str) -> str | int:
    """'auto': bf16-mixed on a GPU that supports it, else full fp32 (bf16 on CPUs without AMX is ~100x slower)."""
    if str(precision) != "auto":
        return precision
    on_gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"


def instantiate_dict(group: DictConfig | None) -> list:
    """Every component (a node with a `_target_`) of a dict-shaped group (callbacks, logger), in order; plain values
    beside them (logger=wandb's project, group, tags) are settings the components interpolate."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


def with_atomic_checkpoints(strategy: Strategy) -> Strategy:
    """Write single-file checkpoints atomically (strategies with their own sharded format keep their IO)."""
    if isinstance(strategy, Strategy) and type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
    return strategy


def build_trainer(cfg: DictConfig, blocks: Sequence[type[nn.Module]] = (), **overrides) -> L.Trainer:
    """The Trainer of `cfg`; `blocks` are the model family's block classes (what a sharding strategy wraps)."""
    check_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    loggers = instantiate_dict(cfg.get("logger"))
    callbacks = [*instantiate_dict(cfg.get("callbacks")), DataLayout()]  # always: resume depends on it
    return instantiate(
        cfg.trainer,
        strategy=with_atomic_checkpoints(build_strategy(cfg.strategy, blocks)),
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
        callbacks=callbacks,
        logger=loggers or False,
        # Lightning adds a tqdm bar unless told not to; ours is chosen by the callbacks group (or there is none).
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        **overrides,
    )
