"""Pre-flight: trial expansion, the estimator against real models, and bad trials found before any launch."""

import pytest
from omegaconf import OmegaConf, open_dict

from llmexp.errors import ConfigError
from llmexp.preflight import run_preflight
from llmexp.preflight.estimate import estimate
from llmexp.preflight.hardware import GIB, Hardware, resolve_hardware
from llmexp.preflight.trials import expand_trials

TINY = ("model=gpt_tiny", "tokenizer.vocab_size=512", "data.block_size=64", "data.batch_size=4")
H100 = Hardware("h100", 80 * GIB, 989e12, "datasheet", True)


def _estimate(make_cfg, *overrides, strategy=None, hardware=H100, choice="ddp"):
    from hydra.utils import instantiate

    cfg = make_cfg(*TINY, *overrides)
    if strategy is not None:
        with open_dict(cfg):
            cfg.strategy = OmegaConf.create(strategy)
    return estimate(cfg, instantiate(cfg.model, vocab_size=512), hardware, choice, mfu=0.5), cfg


def test_grid_sweep_expands_to_every_trial():
    trials = expand_trials(["model=gpt_tiny", "optimizer.lr=1e-3,2e-3", "data.batch_size=4,8,16"])
    assert len(trials) == 6
    assert ["model=gpt_tiny", "optimizer.lr=0.002", "data.batch_size=16"] in trials  # as Hydra writes it


def test_optuna_space_is_covered_by_its_corners_and_the_command_line_wins():
    declared = ["optimizer.lr=tag(log, interval(1e-4, 1e-2))", "data.batch_size=choice(8, 16)"]
    trials = expand_trials(["data.batch_size=32"], declared, corners=True)
    assert sorted(t[0] for t in trials) == ["optimizer.lr=0.0001", "optimizer.lr=0.01"]
    assert all(t[1] == "data.batch_size=32" for t in trials)


def test_parameter_count_matches_the_built_model(make_cfg):
    from hydra.utils import instantiate

    est, cfg = _estimate(make_cfg)
    model = instantiate(cfg.model, vocab_size=512).build()
    assert est.params == sum(p.numel() for p in model.parameters())


def test_flops_per_step_scale_with_tokens_and_accumulation(make_cfg):
    one, _ = _estimate(make_cfg)
    four, _ = _estimate(make_cfg, "trainer.accumulate_grad_batches=2", "data.batch_size=8")
    assert four.flops_per_step == pytest.approx(4 * one.flops_per_step)
    assert four.seconds_per_step == pytest.approx(4 * one.seconds_per_step)


def test_zero3_divides_weights_grads_and_optimizer_over_the_ranks(make_cfg):
    ddp, _ = _estimate(make_cfg, "trainer.devices=8", "trainer.precision=32-true")
    zero3, _ = _estimate(
        make_cfg,
        "trainer.devices=8",
        "trainer.precision=32-true",
        strategy={"_target_": "lightning.pytorch.strategies.DeepSpeedStrategy", "stage": 3},
        choice="deepspeed_zero3",
    )
    assert ddp.weights == 4 * ddp.params and ddp.optimizer == 2 * 4 * ddp.params
    assert zero3.weights == pytest.approx(ddp.weights / 8)
    assert zero3.grads == pytest.approx(ddp.grads / 8)
    assert zero3.activations == ddp.activations


def test_true_half_precision_halves_weight_memory(make_cfg):
    full, _ = _estimate(make_cfg, "trainer.precision=32-true")
    half, _ = _estimate(make_cfg, "trainer.precision=bf16-true")
    assert half.weights == full.weights / 2 and half.activations < full.activations


def test_gradient_checkpointing_shrinks_activations(make_cfg):
    plain, _ = _estimate(make_cfg, "model.n_layer=8")
    ckpt, _ = _estimate(make_cfg, "model.n_layer=8", "+model.gradient_checkpointing=true")
    assert ckpt.activations < plain.activations


def test_named_gpus_use_the_datasheet_and_unknown_names_are_refused():
    h100 = resolve_hardware("h100", "bf16-mixed")
    assert h100.memory_bytes == 80 * GIB and h100.peak_flops > 1e14 and h100.is_gpu
    a100 = resolve_hardware("a100-40gb", "bf16-mixed")
    assert a100.memory_bytes == 40 * GIB and a100.peak_flops == 312e12  # A100 datasheet, bf16 dense
    assert resolve_hardware("a100", "auto").peak_flops == 312e12  # auto precision is bf16-mixed on a GPU
    assert resolve_hardware("a100", "32-true").peak_flops == 19.5e12
    with pytest.raises(ConfigError, match=r"preflight.device=h1000: unknown device; choose .*h100"):
        resolve_hardware("h1000", "bf16-mixed")


def test_preflight_names_the_invalid_and_the_oversized_trial(cache_dir, monkeypatch):
    monkeypatch.setenv("LLMEXP_CACHE_DIR", str(cache_dir))
    report = run_preflight(
        "train",
        [*TINY, "model.n_head=2,3", "data.batch_size=4,65536", "preflight.device=l4"],
        tiny_step=False,
    )
    problems = {" ".join(t.overrides): t.problem for t in report.trials}
    assert len(problems) == 4 and not report.ok
    assert problems[" ".join([*TINY[:3], "model.n_head=2", "data.batch_size=4", "preflight.device=l4"])] is None
    bad_head = next(p for o, p in problems.items() if "model.n_head=3" in o)
    assert bad_head == "invalid: model.n_embd=32 must be divisible by model.n_head=3"
    too_big = problems[" ".join([*TINY[:3], "model.n_head=2", "data.batch_size=65536", "preflight.device=l4"])]
    assert too_big.startswith("does not fit:") and "of l4" in too_big
    assert "pre-flight FAILED" in report.text() and "PROBLEM: invalid: model.n_embd=32" in report.text()


def test_shipped_strategies_shard_as_planned_and_gpu_only_ones_are_refused_on_a_cpu(cache_dir, monkeypatch):
    monkeypatch.setenv("LLMEXP_CACHE_DIR", str(cache_dir))
    plan = [*TINY, "trainer.devices=8", "trainer.precision=32-true", "preflight.device=h100"]
    report = run_preflight("train", [*plan, "strategy=ddp,deepspeed_zero3,fsdp2"], tiny_step=False)
    ddp, zero3, fsdp2 = (t.estimate for t in report.trials)
    assert report.ok and ddp.world_size == 8
    assert zero3.grads == pytest.approx(ddp.grads / 8) and fsdp2.weights == pytest.approx(ddp.weights / 8)
    refused = run_preflight("train", [*TINY, "strategy=fsdp", "preflight.device=cpu"], tiny_step=False)
    assert refused.trials[0].problem.startswith("strategy=fsdp needs CUDA GPUs")
