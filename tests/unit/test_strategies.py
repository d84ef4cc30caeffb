"""Every strategy option composes; CPU ones build a Trainer, GPU-only ones are refused with one line; FSDP2 shards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, SingleDeviceStrategy
from torch import nn

from llmexp.config import config_dir
from llmexp.errors import ConfigError
from llmexp.models.gpt import GPTConfig
from llmexp.models.spec import FAMILIES
from llmexp.training import strategies
from llmexp.training.strategies import FSDP2Strategy, build_strategy, check_hardware
from llmexp.training.trainer import build_trainer

STRATEGIES = sorted(f.stem for f in (config_dir() / "strategy").glob("*.yaml"))
CPU_STRATEGIES = {"single": SingleDeviceStrategy, "ddp": DDPStrategy, "fsdp2": FSDP2Strategy}
GPU_ONLY = sorted(set(STRATEGIES) - set(CPU_STRATEGIES))


def test_the_strategy_group_offers_every_documented_choice():
    expected = {"single", "ddp", "fsdp", "fsdp2", "deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3"}
    assert {*expected, "deepspeed_zero3_offload"} == set(STRATEGIES)


@pytest.mark.parametrize("name", sorted(CPU_STRATEGIES))
def test_cpu_strategies_build_a_two_device_trainer(make_cfg, name):
    devices = 1 if name == "single" else 2
    cfg = make_cfg("experiment=smoke", f"strategy={name}", "trainer.accelerator=cpu", f"trainer.devices={devices}")
    check_hardware(cfg)
    trainer = build_trainer(cfg)
    assert isinstance(trainer.strategy, CPU_STRATEGIES[name])
    assert trainer.world_size == devices and trainer.precision == "32-true"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without GPUs")
@pytest.mark.parametrize("name", GPU_ONLY)
def test_gpu_only_strategies_are_refused_on_cpu_in_one_line(make_cfg, name):
    cfg = make_cfg("experiment=smoke", f"strategy={name}")
    with pytest.raises(ConfigError) as info:
        check_hardware(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"strategy={name} needs CUDA GPUs (trainer.accelerator=auto, found 0 CUDA devices)")
    assert "strategy=fsdp2" in message  # names what runs here instead


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without GPUs")
@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true", "16-mixed"])
def test_half_precision_is_refused_on_cpu_in_one_line(make_cfg, precision):
    with pytest.raises(ConfigError, match=rf"^trainer.precision={precision} needs a CUDA GPU .* use trainer.precision"):
        check_hardware(make_cfg("experiment=smoke", f"trainer.precision={precision}"))


@pytest.fixture
def pretend_gpu(monkeypatch):
    """Building a strategy object touches no device; this lets the GPU-only factories run here."""
    from llmexp.config import hardware

    monkeypatch.setattr(hardware, "on_gpu", lambda accelerator: True)
    monkeypatch.setattr(strategies, "on_gpu", lambda accelerator: True)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((), {"sharding_strategy": "FULL_SHARD", "checkpointing": False, "offload": False}),
        (("strategy.sharding_strategy=SHARD_GRAD_OP",), {"sharding_strategy": "SHARD_GRAD_OP"}),
        (("strategy.activation_checkpointing=true",), {"checkpointing": True}),
        (("strategy.cpu_offload=true",), {"offload": True}),
        (("strategy.sharding_strategy=HYBRID_SHARD", "trainer.num_nodes=2", "trainer.devices=4"), {"mesh": (2, 4)}),
    ],
)
def test_fsdp_options_reach_lightning(make_cfg, pretend_gpu, overrides, expected):
    from llmexp.models.gpt import Block

    strategy = build_strategy(make_cfg("strategy=fsdp", *overrides).strategy, FAMILIES["gpt"].block_classes)
    assert isinstance(strategy, FSDPStrategy)
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {Block}
    found = {
        "sharding_strategy": strategy.sharding_strategy.name,
        "checkpointing": bool(strategy._activation_checkpointing_kwargs),
        "offload": bool(strategy.cpu_offload and strategy.cpu_offload.offload_params),
        "mesh": strategy.kwargs.get("device_mesh"),
    }
    assert {k: found[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("name", "stage", "offload"),
    [
        ("deepspeed_zero1", 1, False),
        ("deepspeed_zero2", 2, False),
        ("deepspeed_zero3", 3, False),
        ("deepspeed_zero3_offload", 3, True),
    ],
)
def test_deepspeed_options_reach_lightning(make_cfg, pretend_gpu, name, stage, offload):
    strategy = build_strategy(make_cfg("experiment=smoke", f"strategy={name}").strategy)
    assert isinstance(strategy, DeepSpeedStrategy)
    zero = strategy.config["zero_optimization"]
    assert zero["stage"] == stage
    assert ("offload_optimizer" in zero) == offload and ("offload_param" in zero) == offload
    assert strategy.config["train_micro_batch_size_per_gpu"] == 8  # data.batch_size of experiment=smoke


def test_bad_sharding_strategy_names_the_choices(make_cfg, pretend_gpu):
    with pytest.raises(ConfigError, match=r"strategy.sharding_strategy=EVERYTHING: not one of FULL_SHARD, SHARD_GRAD"):
        build_strategy(make_cfg("strategy=fsdp", "strategy.sharding_strategy=EVERYTHING").strategy, (nn.Linear,))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fsdp_wraps_the_blocks_of_every_family(make_cfg, pretend_gpu, family):
    """No family is sharded at the root only: each one's own block classes become the FSDP units."""
    blocks = FAMILIES[family].block_classes
    strategy = build_strategy(make_cfg("strategy=fsdp").strategy, blocks)
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == set(blocks)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def one_process_group():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fsdp2_shards_every_family_by_its_blocks(one_process_group, family):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule

    spec = FAMILIES[family]
    model = spec.config_class(vocab_size=64).build()
    strategy = FSDP2Strategy()
    strategy._device_mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("data_parallel",))
    strategy.parallelize(model, spec.block_classes)
    blocks = [m for m in model.modules() if isinstance(m, spec.block_classes)]
    assert blocks and all(isinstance(b, FSDPModule) for b in blocks) and isinstance(model, FSDPModule)


def test_fsdp2_parallelize_shards_blocks_and_keeps_the_maths(one_process_group):
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    torch.manual_seed(0)
    model = GPTConfig(vocab_size=64, n_layer=2, n_head=2, n_embd=16, max_seq_len=16).build()
    expected = model(torch.arange(16).view(2, 8)).detach()
    strategy = FSDP2Strategy(activation_checkpointing=True)
    strategy._device_mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("data_parallel",))
    strategy.parallelize(model, FAMILIES["gpt"].block_classes)
    strategy.parallelize(
        model, FAMILIES["gpt"].block_classes
    )  # a second call (validate after fit) leaves the model as it is
    assert isinstance(model, FSDPModule) and all(isinstance(b, FSDPModule) for b in model.blocks)
    assert all(isinstance(p, DTensor) for p in model.parameters())
    assert all(isinstance(b, CheckpointWrapper) for b in model.blocks)  # activation checkpointing per block
    out = model(torch.arange(16).view(2, 8))
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_command_line_refuses_a_gpu_strategy_with_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without GPUs")
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", "strategy=deepspeed_zero3_offload", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        env={**os.environ, "LLMEXP_CACHE_DIR": str(tmp_path / "cache")},
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "llmexp-train: error: strategy=deepspeed_zero3_offload needs CUDA GPUs (trainer.accelerator=auto, found 0 CUDA "
        "devices); on CPU use strategy=single, strategy=ddp or strategy=fsdp2"
    )
    assert not (tmp_path / "cache").exists()  # refused before any data work


def test_fsdp2_refuses_fp16_amp_in_one_line(make_cfg, pretend_gpu):
    with pytest.raises(ConfigError, match=r"^trainer.precision=16-mixed is not supported by strategy=fsdp2 .*bf16"):
        check_hardware(make_cfg("experiment=smoke", "strategy=fsdp2", "trainer.precision=16-mixed"))
