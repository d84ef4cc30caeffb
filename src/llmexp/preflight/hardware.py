"""The hardware a pre-flight estimate is made for: device memory and peak FLOP/s.

Peaks come from Lightning's datasheet table (the same figures MFU uses during training); memory from the datasheet
too, since a GPU on a cluster node cannot be probed from the login node where a sweep is launched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from lightning.fabric.utilities.throughput import _CUDA_FLOPS

from llmexp.errors import ConfigError
from llmexp.training.flops import compute_dtype, measure_matmul_flops

GIB = 1024**3

# Datasheet memory per device (GiB), keyed like Lightning's _CUDA_FLOPS table (lower-case chip names).
_GPU_MEMORY_GIB = {
    "h200 sxm1": 141,
    "h100 nvl": 94,
    "h100 sxm": 80,
    "h100 pcie": 80,
    "l4": 24,
    "l40": 48,
    "l40s": 48,
    "a100": 80,
    "a6000": 48,
    "a40": 48,
    "a10g": 24,
    "rtx 4090": 24,
    "rtx 3090": 24,
    "v100 sxm": 32,
    "v100 pcie": 32,
    "t4": 16,
}
# Short names people type on the command line -> (table key, memory override in GiB or None).
_ALIASES = {
    "h200": ("h200 sxm1", None),
    "h100": ("h100 sxm", None),
    "a100": ("a100", None),
    "a100-80gb": ("a100", 80),
    "a100-40gb": ("a100", 40),
    "v100": ("v100 sxm", None),
    "v100-16gb": ("v100 sxm", 16),
}


@dataclass(frozen=True)
class Hardware:
    """One device of the run: its name, memory, and peak FLOP/s at the run's compute dtype."""

    name: str
    memory_bytes: float
    peak_flops: float
    peak_source: str
    is_gpu: bool


def known_devices() -> list[str]:
    return sorted({*_ALIASES, *(k for k in _GPU_MEMORY_GIB if k in _CUDA_FLOPS)})


def _gpu_peak(key: str, precision: str | int) -> float:
    """Datasheet peak at the run's compute dtype; precision `auto` means bf16-mixed on a GPU (as in training)."""
    dtype = compute_dtype("bf16-mixed" if str(precision) == "auto" else precision)
    table = _CUDA_FLOPS[key]
    return float(table.get(dtype, table.get(torch.float16, table[torch.float32])))


def cpu_memory_bytes() -> float:
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def resolve_hardware(device: str, precision: str | int) -> Hardware:
    """`auto`: this machine's first GPU, else its CPU (peak from a matmul probe); `cpu`; or a GPU name."""
    name = str(device).lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        dtype = compute_dtype(precision)
        return Hardware("cpu", cpu_memory_bytes(), measure_matmul_flops(dtype), "matmul probe", False)
    if name == "cuda":
        props = torch.cuda.get_device_properties(0)
        chip = props.name.lower()
        key = next((k for k in sorted(_CUDA_FLOPS, key=len, reverse=True) if k in chip), None)
        if key is None:
            raise ConfigError(f"preflight.device=auto: no datasheet peak for {props.name}; set preflight.device")
        return Hardware(props.name, float(props.total_memory), _gpu_peak(key, precision), "datasheet", True)
    key, memory = _ALIASES.get(name, (name, None))
    if key not in _CUDA_FLOPS or key not in _GPU_MEMORY_GIB:
        raise ConfigError(
            f"preflight.device={device}: unknown device; choose auto, cpu or one of: {', '.join(known_devices())}"
        )
    return Hardware(name, (memory or _GPU_MEMORY_GIB[key]) * GIB, _gpu_peak(key, precision), "datasheet", True)
