"""The framework's share of a training step: what runs every step, and what only on logging steps."""

from __future__ import annotations

import csv
import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from llmexp.models.gpt import GPTConfig
from llmexp.tasks.causal_lm import CausalLMTask
from llmexp.tasks.optim import configure_optimization
from llmexp.training.callbacks.guards import DivergenceGuard


class CountingTask(CausalLMTask):
    """Records the steps on which the training metrics were computed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.metric_steps: list[int] = []

    def step_metrics(self, *args) -> dict:
        self.metric_steps.append(self.global_step)
        return super().step_metrics(*args)


class LightningClipping(CausalLMTask):
    """Clips as Lightning does by itself (clip_grad_norm_: its own norm pass and an unconditional rescale)."""

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        L.LightningModule.configure_gradient_clipping(self, optimizer, gradient_clip_val, gradient_clip_algorithm)


def _task(kind: type[CausalLMTask] = CausalLMTask) -> CausalLMTask:
    torch.manual_seed(0)
    model = GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=16, max_seq_len=16).build()
    return kind(model, functools.partial(torch.optim.AdamW, lr=1e-2))


QUIET = {
    "accelerator": "cpu",
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "enable_checkpointing": False,
}


def _fit(task: CausalLMTask, tmp_path, steps: int = 12, **trainer_args) -> None:
    tokens = torch.randint(0, 64, (64, 17), generator=torch.Generator().manual_seed(0))
    rows = [{"input_ids": t[:-1], "labels": t[1:]} for t in tokens]
    settings = {"logger": False, "callbacks": [DivergenceGuard()], **QUIET, **trainer_args}
    L.Trainer(max_steps=steps, default_root_dir=tmp_path, **settings).fit(task, DataLoader(rows, batch_size=4))


def test_step_metrics_are_computed_on_logging_steps_and_the_last_step_only(tmp_path):
    task = _task(CountingTask)
    _fit(task, tmp_path, steps=12, log_every_n_steps=5, logger=CSVLogger(tmp_path, name="", version=""))
    assert task.metric_steps == [4, 9, 11]
    with open(tmp_path / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["train/loss"]]
    assert [int(r["step"]) for r in rows] == [4, 9]
    assert all(r["train/bpb"] and r["train/grad_norm"] and r["train/lr"] and r["guard/skipped"] for r in rows)


def test_one_gradient_norm_per_step_serves_the_guard_the_logged_metric_and_clipping(tmp_path, monkeypatch):
    passes = []
    norm = torch._foreach_norm
    monkeypatch.setattr(torch, "_foreach_norm", lambda *args, **kwargs: passes.append(1) or norm(*args, **kwargs))
    _fit(_task(), tmp_path, steps=6, log_every_n_steps=1, gradient_clip_val=1.0)
    assert len(passes) == 6


@pytest.mark.parametrize("clip", [0.05, 1e9])  # every step clipped; no step clipped (the rescale is skipped)
def test_clipping_with_the_shared_norm_gives_the_weights_lightning_gives(tmp_path, clip):
    ours, lightnings = _task(), _task(LightningClipping)
    _fit(ours, tmp_path / "ours", steps=6, gradient_clip_val=clip)
    _fit(lightnings, tmp_path / "lightning", steps=6, gradient_clip_val=clip)
    for mine, theirs in zip(ours.parameters(), lightnings.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_adamw_gets_its_fused_kernel_only_where_the_config_leaves_the_choice_to_torch():
    model = GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=16, max_seq_len=16).build()

    def fused(allowed: bool, **choice) -> bool:
        factory = functools.partial(torch.optim.AdamW, lr=1e-3, **choice)
        return bool(configure_optimization(model, factory, None, 10, allowed)["optimizer"].defaults["fused"])

    assert fused(True, fused=None, foreach=None)
    assert not fused(False, fused=None, foreach=None)  # e.g. fp16 with a loss scaler, or DeepSpeed
    assert not fused(True, fused=None, foreach=True)  # the config chose
