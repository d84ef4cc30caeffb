"""What this machine can run, as rules shared by config validation and the strategy factories."""

from __future__ import annotations

from llmexp.errors import ConfigError

GPU_PRECISIONS = ("16-mixed", "bf16-mixed", "bf16-true", "16-true", "16", "bf16")


def cuda_devices() -> int:
    """CUDA devices on this machine (torch is imported here, not when the config package loads: --help stays fast)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def on_gpu(accelerator: str) -> bool:
    """Whether the run will use CUDA devices: the accelerator allows it and this machine has one."""
    return accelerator in ("auto", "gpu", "cuda") and cuda_devices() > 0


def require_gpu(what: str, accelerator: str) -> None:
    if not on_gpu(accelerator):
        found = f"{cuda_devices()} CUDA devices" if accelerator in ("auto", "gpu", "cuda") else "cpu"
        raise ConfigError(
            f"{what} needs CUDA GPUs (trainer.accelerator={accelerator}, found {found}); "
            "on CPU use strategy=single, strategy=ddp or strategy=fsdp2"
        )


def check_precision(precision: str | int, accelerator: str) -> None:
    """Half precision is for GPUs: this CPU runs bf16 matmuls ~100x slower than fp32, and fp16 AMP has no CPU path."""
    if str(precision) in GPU_PRECISIONS and not on_gpu(accelerator):
        raise ConfigError(
            f"trainer.precision={precision} needs a CUDA GPU (trainer.accelerator={accelerator}); "
            "on CPU use trainer.precision=32-true (or auto)"
        )
