"""Parameters, FLOPs, memory per device and time per step of one run, from its config alone (nothing is built).

Memory follows the usual accounting (ZeRO paper, Rajbhandari et al. 2020; activations after Korthikanti et al. 2022
with fused attention, i.e. no stored attention scores): weights, gradients and optimizer state at the bytes the
precision implies, divided over the ranks that shard them, plus activations and logits of one micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from llmexp.preflight.hardware import GIB, Hardware

# (weight, gradient, bytes per optimizer-state value, activation) bytes per element.
_PRECISION_BYTES = {
    "32-true": (4, 4, 4, 4),
    "16-mixed": (4, 4, 4, 2),
    "bf16-mixed": (4, 4, 4, 2),
    "16-true": (2, 2, 2, 2),
    "bf16-true": (2, 2, 2, 2),
}


@dataclass(frozen=True)
class Sharding:
    """What a strategy splits over its data-parallel ranks, and what it moves to CPU memory."""

    name: str
    params: bool = False
    grads: bool = False
    optimizer: bool = False
    offload_params: bool = False
    offload_optimizer: bool = False
    shard_group: str = "world"  # world | node (HYBRID_SHARD shards within a node, replicates across nodes)


@dataclass(frozen=True)
class Estimate:
    """What one run needs per device; bytes, FLOPs and seconds."""

    params: int
    world_size: int
    tokens_per_step: int  # global, per optimizer step
    flops_per_step: float  # per device, per optimizer step
    weights: float
    grads: float
    optimizer: float
    activations: float
    seconds_per_step: float
    precision: str
    sharding: str

    @property
    def memory(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations

    def memory_text(self) -> str:
        parts = (self.weights, self.grads, self.optimizer, self.activations)
        unit, scale = ("GiB", GIB) if self.memory >= GIB else ("MiB", 1024**2)
        split = " / ".join(f"{p / scale:.2f}" for p in parts)
        return f"{self.memory / scale:.2f} {unit} (weights/grads/optimizer/activations {split})"


def sharding_of(strategy: DictConfig, choice: str) -> Sharding:
    """Read the sharding from the strategy node's target and arguments; fall back on the option's name."""
    target = str(strategy.get("_target_", "")) if strategy else ""
    text = f"{target} {choice}".lower()
    if "deepspeed" in text:
        stage = int(strategy.get("stage", 3 if "zero3" in text else 2 if "zero2" in text else 1))
        offload = "offload" in choice.lower()
        return Sharding(
            choice,
            params=stage >= 3,
            grads=stage >= 2,
            optimizer=True,
            offload_params=bool(strategy.get("offload_parameters", offload and stage >= 3)),
            offload_optimizer=bool(strategy.get("offload_optimizer", offload)),
        )
    if "modelparallel" in text or "fsdp2" in text:
        return Sharding(choice, params=True, grads=True, optimizer=True)
    if "fsdp" in text:
        mode = str(strategy.get("sharding_strategy", "FULL_SHARD")).upper()
        offload = bool(strategy.get("cpu_offload", False))
        full = mode in ("FULL_SHARD", "HYBRID_SHARD")
        return Sharding(
            choice,
            params=full,
            grads=mode != "NO_SHARD",
            optimizer=mode != "NO_SHARD",
            offload_params=offload,
            offload_optimizer=offload,
            shard_group="node" if mode.startswith("HYBRID") else "world",
        )
    return Sharding(choice)


def world_size(trainer: DictConfig) -> tuple[int, int]:
    """(devices per node, nodes). `auto`/-1 devices count this machine's GPUs (1 on a CPU)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, list | tuple) or (hasattr(devices, "__len__") and not isinstance(devices, str)):
        per_node = len(devices)
    elif str(devices) in ("auto", "-1"):
        per_node = max(torch.cuda.device_count(), 1)
    else:
        per_node = int(devices)
    return per_node, int(trainer.get("num_nodes", 1) or 1)


def optimizer_states(optimizer: DictConfig) -> int:
    """Values kept per parameter: 2 for Adam-like optimizers, 1 for SGD with momentum, else 0."""
    target = str(optimizer.get("_target_", "")).lower()
    if "adam" in target or "lamb" in target:
        return 2
    if "sgd" in target:
        return 1 if optimizer.get("momentum", 0) else 0
    return 2


def resolved_precision(precision: str | int, hardware: Hardware) -> str:
    text = str(precision)
    if text == "auto":
        return "bf16-mixed" if hardware.is_gpu else "32-true"
    return {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "32-true", "64-true": "32-true"}.get(
        text, text
    )


def estimate(cfg: DictConfig, model_config, hardware: Hardware, choice: str, mfu: float) -> Estimate:
    """Estimate one run of `cfg` (a composed train config) with `model_config` (a built GPTConfig) on `hardware`."""
    per_node, nodes = world_size(cfg.trainer)
    world = per_node * nodes
    precision = resolved_precision(cfg.trainer.precision, hardware)
    w_bytes, g_bytes, o_bytes, a_bytes = _PRECISION_BYTES.get(precision, _PRECISION_BYTES["32-true"])
    sharding = sharding_of(cfg.strategy, choice)
    if "deepspeed" in sharding.name.lower() and precision.endswith("mixed"):
        w_bytes, g_bytes, o_bytes = 2, 2, 4  # ZeRO mixed precision: 16-bit weights/grads, fp32 master in the state
        extra_master = 1
    else:
        extra_master = 0
    params = model_config.num_params(non_embedding=False)
    shard = per_node if sharding.shard_group == "node" else world

    def split(total: float, sharded: bool, offloaded: bool) -> float:
        return 0.0 if offloaded and hardware.is_gpu else total / (shard if sharded else 1)

    n_states = optimizer_states(cfg.optimizer) + extra_master
    weights = split(params * w_bytes, sharding.params, sharding.offload_params)
    grads = split(params * g_bytes, sharding.grads, sharding.offload_params)
    optimizer = split(params * o_bytes * n_states, sharding.optimizer, sharding.offload_optimizer)

    b, s = int(cfg.data.batch_size), int(cfg.data.block_size)
    h, layers, vocab = model_config.n_embd, model_config.n_layer, model_config.vocab_size
    per_layer = 34 * s * b * h * a_bytes / 2
    if getattr(model_config, "gradient_checkpointing", False) or (cfg.strategy or {}).get("activation_checkpointing"):
        stored = layers * s * b * h * a_bytes + per_layer
    else:
        stored = layers * per_layer
    activations = stored + b * s * vocab * (a_bytes + 8)  # logits, plus fp32 softmax and its gradient in the loss

    accumulate = int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
    tokens_per_device = b * s * accumulate
    flops = float(model_config.flops_per_token(s)) * tokens_per_device
    return Estimate(
        params=params,
        world_size=world,
        tokens_per_step=tokens_per_device * world,
        flops_per_step=flops,
        weights=weights,
        grads=grads,
        optimizer=optimizer,
        activations=activations,
        seconds_per_step=flops / (hardware.peak_flops * mfu),
        precision=precision,
        sharding=sharding.name,
    )
