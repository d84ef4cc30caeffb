"""Strategy factories for conf/strategy/: parallelism applied from outside the model, GPU-only choices refused early.

Every factory takes the trainer's accelerator so that a strategy that needs CUDA (fsdp, deepspeed_*) fails with one
line naming the key and the alternatives, instead of a traceback from deep inside Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.strategies import (
    DeepSpeedStrategy,
    FSDPStrategy,
    ModelParallelStrategy,
    SingleDeviceStrategy,
    Strategy,
)
from omegaconf import DictConfig
from torch import nn

from llmexp.config.hardware import check_precision, on_gpu, require_gpu
from llmexp.errors import ConfigError, UserError

SHARDING_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD")


BlockNames = Sequence[str | type[nn.Module]] | None


def block_classes(names: BlockNames) -> set[type[nn.Module]]:
    """Classes named in a config (or given as classes); empty when None: the model family's blocks decide."""
    return {get_class(name) if isinstance(name, str) else name for name in names or ()}


def single_device(accelerator: str = "auto") -> SingleDeviceStrategy:
    """One process on the first GPU when there is one (and the accelerator allows it), else on the CPU."""
    return SingleDeviceStrategy(device=torch.device("cuda", 0) if on_gpu(accelerator) else torch.device("cpu"))


def _int_devices(devices: Any) -> int:
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return len(devices)
    return max(1, torch.cuda.device_count())


def fsdp(
    accelerator: str = "auto",
    sharding_strategy: str = "FULL_SHARD",
    activation_checkpointing: bool = False,
    cpu_offload: bool = False,
    state_dict_type: str = "sharded",
    wrap_modules: BlockNames = None,
    num_nodes: int = 1,
    devices: Any = "auto",
) -> FSDPStrategy:
    """Lightning's FSDP (v1): each transformer block is one FSDP unit; HYBRID_SHARD shards within a node and
    replicates across nodes. `wrap_modules` None: the model family's block classes (the run passes them in)."""
    require_gpu("strategy=fsdp", accelerator)
    if sharding_strategy not in SHARDING_STRATEGIES:
        raise ConfigError(
            f"strategy.sharding_strategy={sharding_strategy}: not one of {', '.join(SHARDING_STRATEGIES)}"
        )
    blocks = block_classes(wrap_modules)
    if not blocks:
        raise ConfigError("strategy=fsdp: no block classes to wrap (strategy.wrap_modules is null and no model given)")
    hybrid = sharding_strategy == "HYBRID_SHARD"
    return FSDPStrategy(
        auto_wrap_policy=blocks,
        activation_checkpointing_policy=blocks if activation_checkpointing else None,
        sharding_strategy=sharding_strategy,
        cpu_offload=cpu_offload,
        state_dict_type=state_dict_type,
        device_mesh=(num_nodes, _int_devices(devices)) if hybrid else None,
    )


class FSDP2Strategy(ModelParallelStrategy):
    """ModelParallelStrategy whose `parallelize` applies activation checkpointing and `fully_shard` (FSDP2) per block
    and then to the root. The task calls it from `configure_model` with its model family's block classes."""

    def __init__(
        self,
        wrap_modules: BlockNames = None,
        activation_checkpointing: bool = False,
        cpu_offload: bool = False,
        reshard_after_forward: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.blocks = tuple(block_classes(wrap_modules))
        self.activation_checkpointing = activation_checkpointing
        self.cpu_offload = cpu_offload
        self.reshard_after_forward = reshard_after_forward

    def setup_environment(self) -> None:
        # Lightning's "auto" puts tensor parallelism within a node; here every process is a data-parallel shard.
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def parallelize(self, model: nn.Module, family_blocks: Sequence[type[nn.Module]] = ()) -> None:
        """Shard `model` in place over the data-parallel mesh, one unit per block (`strategy.wrap_modules`, else the
        model family's blocks); a second call (validate after fit) does nothing."""
        from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, fully_shard

        if isinstance(model, FSDPModule):
            return
        blocks = self.blocks or tuple(family_blocks)
        units: list[nn.Module] = [m for m in model.modules() if isinstance(m, blocks)]
        if self.activation_checkpointing:  # before sharding, as torchtitan does: each wrapped block is one FSDP unit
            from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
                CheckpointWrapper,
                apply_activation_checkpointing,
            )

            apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, blocks))
            units = [m for m in model.modules() if isinstance(m, CheckpointWrapper)]
        options: dict[str, Any] = {"mesh": self.device_mesh["data_parallel"]}
        if self.cpu_offload:
            options["offload_policy"] = CPUOffloadPolicy()
        for unit in units:
            fully_shard(unit, reshard_after_forward=self.reshard_after_forward, **options)
        fully_shard(model, **options)


def fsdp2(
    accelerator: str = "auto",
    data_parallel_size: int | str = "auto",
    tensor_parallel_size: int = 1,
    activation_checkpointing: bool = False,
    cpu_offload: bool = False,
    reshard_after_forward: bool = True,
    save_distributed_checkpoint: bool = True,
    wrap_modules: BlockNames = None,
) -> FSDP2Strategy:
    """FSDP2 (`fully_shard`, DTensor parameters) through Lightning's ModelParallelStrategy; runs on CPU with gloo."""
    if tensor_parallel_size != 1:
        raise ConfigError(
            f"strategy.tensor_parallel_size={tensor_parallel_size}: tensor parallelism is not implemented for "
            "llmexp models yet; use 1 (all devices shard the model data-parallel)"
        )
    if cpu_offload:
        require_gpu("strategy.cpu_offload=true", accelerator)
    return FSDP2Strategy(
        wrap_modules=wrap_modules,
        activation_checkpointing=activation_checkpointing,
        cpu_offload=cpu_offload,
        reshard_after_forward=reshard_after_forward,
        data_parallel_size=data_parallel_size,
        tensor_parallel_size=tensor_parallel_size,
        save_distributed_checkpoint=save_distributed_checkpoint,
    )


def deepspeed(
    stage: int,
    accelerator: str = "auto",
    offload_optimizer: bool = False,
    offload_parameters: bool = False,
    logging_batch_size_per_gpu: int = 1,
    allgather_bucket_size: int = 200_000_000,
    reduce_bucket_size: int = 200_000_000,
) -> DeepSpeedStrategy:
    """DeepSpeed ZeRO stage 1/2/3, optionally offloading optimizer state and parameters to CPU memory."""
    require_gpu(f"strategy=deepspeed_zero{stage}{'_offload' if offload_optimizer else ''}", accelerator)
    if stage not in (1, 2, 3):
        raise ConfigError(f"strategy.stage={stage}: DeepSpeed ZeRO stages are 1, 2 and 3")
    strategy = DeepSpeedStrategy(
        stage=stage,
        offload_optimizer=offload_optimizer,
        offload_parameters=offload_parameters,
        logging_batch_size_per_gpu=logging_batch_size_per_gpu,
        allgather_bucket_size=allgather_bucket_size,
        reduce_bucket_size=reduce_bucket_size,
    )
    if offload_optimizer:
        # Our optimizer is torch's AdamW (from the optimizer group); DeepSpeed refuses a client optimizer with
        # ZeRO-Offload unless told that is intended.
        strategy.config["zero_force_ds_cpu_optimizer"] = False
    return strategy


def build_strategy(node: DictConfig, blocks: Sequence[type[nn.Module]] = ()) -> Strategy | str:
    """Instantiate conf/strategy/<name>; `strategy.wrap_modules: null` takes `blocks` (the model family's). A
    UserError raised by a factory comes out as itself, not wrapped by Hydra."""
    extra = {"wrap_modules": list(blocks)} if "wrap_modules" in node and node.wrap_modules is None and blocks else {}
    try:
        return instantiate(node, **extra)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise


def check_hardware(cfg: DictConfig, blocks: Sequence[type[nn.Module]] = ()) -> None:
    """Fail before any heavy work when the strategy or precision cannot run on this machine."""
    check_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    strategy = build_strategy(cfg.strategy, blocks)
    if isinstance(strategy, ModelParallelStrategy) and str(cfg.trainer.precision) in ("16-mixed", "16"):
        raise ConfigError(
            f"trainer.precision={cfg.trainer.precision} is not supported by strategy=fsdp2 (Lightning's "
            "ModelParallelStrategy); use bf16-mixed, bf16-true or 32-true"
        )
