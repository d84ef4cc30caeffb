"""Peak FLOP/s of the device a run trains on: the denominator of model FLOPs utilisation (MFU)."""

from __future__ import annotations

import functools
import time

import torch
from lightning.fabric.utilities.throughput import get_available_flops

_PRECISION_DTYPES = {
    "bf16-mixed": torch.bfloat16,
    "bf16-true": torch.bfloat16,
    "bf16": torch.bfloat16,
    "16-mixed": torch.float16,
    "16-true": torch.float16,
    "16": torch.float16,
}


def compute_dtype(precision: str | int) -> torch.dtype:
    return _PRECISION_DTYPES.get(str(precision), torch.float32)


@functools.lru_cache(maxsize=4)
def measure_matmul_flops(dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 0.5) -> float:
    """FLOP/s of a large square matmul on the CPU, with the process's thread count: the practical CPU peak."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / elapsed


def peak_flops(device: torch.device, precision: str | int) -> tuple[float | None, str]:
    """(FLOP/s, where the figure comes from). GPUs: Lightning's datasheet table; CPUs: a matmul probe, run once."""
    dtype = compute_dtype(precision)
    if device.type == "cuda":
        if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
            dtype = "tf32"
        flops = get_available_flops(device, dtype)
        name = torch.cuda.get_device_name(device)
        return (float(flops), f"{name} datasheet {dtype}") if flops else (None, f"{name}: unknown peak")
    if device.type == "cpu":
        return measure_matmul_flops(dtype), f"cpu {str(dtype).removeprefix('torch.')} matmul probe"
    return None, f"{device.type}: unknown peak"
