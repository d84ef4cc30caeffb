"""Wrong types, unknown arguments and impossible combinations fail before any work, with one line naming the key."""

import pytest
import torch

from llmexp.config import config_dir
from llmexp.config.overrides import validate_overrides
from llmexp.errors import ConfigError

CONF = config_dir()
CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="these combinations are possible on a GPU machine")

BAD = [
    ("trainer.max_steps=lots", "trainer.max_steps='lots': wrong type, expected int"),
    ("optimizer.lr=fast", "optimizer.lr='fast': wrong type, expected"),
    ("data.batch_size=1.5", "data.batch_size=1.5: wrong type, expected int"),
    ("model.n_layer=true", "model.n_layer=True: wrong type, expected int"),
    ("callbacks.divergence_guard.max_rollbacks=[1]", "callbacks.divergence_guard.max_rollbacks=[1]: wrong type"),
    ("eval.final_validation=maybe", "eval.final_validation='maybe': wrong type, expected bool"),
    ("batch_size_finder.steps=many", "batch_size_finder.steps='many': wrong type, expected int"),
    ("seed=abc", "seed='abc': wrong type, expected int"),
    ("paths.cache_dir=[a,b]", "paths.cache_dir=['a', 'b']: wrong type, expected str"),
    ("+model.n_layers=4", "model.n_layers: not an argument of llmexp.models.gpt.GPTConfig"),
    ("+model.n_layers=4", "(did you mean 'n_layer'?)"),
    ("+callbacks.periodic_checkpoint.keep=3", "did you mean 'keep_last'?"),
    ("+trainer.max_step=3", "trainer.max_step: not an argument of lightning.pytorch.Trainer"),
    ("data.block_size=512", "data.block_size=512 exceeds model.max_seq_len=256"),
    ("model=gpt_tiny model.n_embd=30 model.n_head=4", "model.n_embd=30 must be divisible by model.n_head=4"),
    ("trainer.devices=2", "trainer.devices=2 with strategy=single (one process); use strategy=ddp"),
]
CPU_BAD = [
    ("trainer.precision=16-mixed", "trainer.precision=16-mixed needs a CUDA GPU (trainer.accelerator=auto)"),
    ("trainer.precision=bf16-mixed trainer.accelerator=cpu", "trainer.precision=bf16-mixed needs a CUDA GPU"),
    ("trainer.accelerator=gpu strategy=ddp trainer.devices=2", "trainer.devices=2, but this machine has 0 GPUs"),
]


@pytest.mark.parametrize(("override", "expected"), BAD, ids=[o for o, _ in BAD])
def test_bad_override_fails_with_one_line(override, expected):
    with pytest.raises(ConfigError) as info:
        validate_overrides(CONF, "train", ["model=gpt_tiny", *override.split()])
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@CPU_ONLY
@pytest.mark.parametrize(("override", "expected"), CPU_BAD, ids=[o for o, _ in CPU_BAD])
def test_gpu_only_settings_on_a_cpu_machine_fail_with_one_line(override, expected):
    with pytest.raises(ConfigError) as info:
        validate_overrides(CONF, "train", override.split())
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_valid_typed_overrides_pass():
    validate_overrides(
        CONF,
        "train",
        [
            "trainer.max_steps=10",
            "optimizer.lr=1",  # an int where a float is expected is fine
            "trainer.precision=32-true",
            "strategy=ddp",
            "trainer.devices=2",
            "callbacks.divergence_guard.action=rollback",
            "ckpt_path=auto",
        ],
    )


def test_train_rejects_a_bad_config_before_any_work(make_cfg, tmp_path):
    from llmexp.training.run import train

    with pytest.raises(ConfigError, match=r"trainer\.precision=bf16-true needs a CUDA GPU"):
        train(make_cfg("experiment=smoke", "trainer.accelerator=cpu", "trainer.precision=bf16-true"))
    assert not (tmp_path / "run").exists()
