"""Divergence guards on a tiny model: injected NaNs and loss spikes are skipped, stop the run, or roll it back."""

import functools
import json
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from helpers import InjectNaN
from llmexp.artifacts.checkpoint import AtomicCheckpointIO, read_checkpoint
from llmexp.models.gpt import GPTConfig
from llmexp.tasks.causal_lm import CausalLMTask
from llmexp.training.callbacks.guards import DivergenceGuard, TrainingDivergedError
from llmexp.training.callbacks.resume_checkpoint import ResumeCheckpoint


def _batches(n: int = 64) -> DataLoader:
    tokens = torch.randint(0, 64, (n, 17), generator=torch.Generator().manual_seed(0))
    rows = [{"input_ids": t[:-1], "labels": t[1:]} for t in tokens]
    return DataLoader(rows, batch_size=4)


def _fit(tmp_path, guard: DivergenceGuard, inject: InjectNaN, steps: int = 12, *extra: L.Callback) -> CausalLMTask:
    L.seed_everything(0)
    model = GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=16, max_seq_len=16).build()
    task = CausalLMTask(model, functools.partial(torch.optim.AdamW, lr=1e-2))
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ResumeCheckpoint) for c in extra),
        default_root_dir=tmp_path,
        callbacks=[guard, inject, *extra],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(task, train_dataloaders=_batches())
    return task


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_nonfinite_steps_are_skipped_and_counted(tmp_path):
    guard = DivergenceGuard(action="skip")
    task = _fit(tmp_path, guard, InjectNaN([3, 7], str(tmp_path / "nan.jsonl")))
    records = _records(tmp_path / "nan.jsonl")
    assert [r["step"] for r in records] == [3, 7]
    assert all(r["before"] == r["after"] for r in records), records  # the bad steps left every weight as it was
    assert guard.counts == {"nonfinite": 2, "spikes": 0, "skipped": 2, "rollbacks": 0}
    assert all(torch.isfinite(p).all() for p in task.parameters())
    assert task.trainer.callback_metrics["guard/nonfinite"] == 2


def test_nonfinite_loss_stops_with_a_report(tmp_path):
    guard = DivergenceGuard(action="stop")
    with pytest.raises(TrainingDivergedError, match=r"training stopped at step 5: nonfinite .*divergence_report.json"):
        _fit(tmp_path, guard, InjectNaN([5], str(tmp_path / "nan.jsonl")))
    report = json.loads((tmp_path / "divergence_report.json").read_text())
    assert report["global_step"] == 5 and report["kind"] == "nonfinite" and math.isnan(report["loss"])
    assert len(report["recent_losses"]) == 5


def test_rollback_restores_the_last_checkpoint(tmp_path):
    guard = DivergenceGuard(action="rollback")
    saver = ResumeCheckpoint(dirpath=tmp_path / "checkpoints", every_n_train_steps=3, keep_last=10)
    task = _fit(tmp_path, guard, InjectNaN([7], str(tmp_path / "nan.jsonl")), 12, saver)
    (record,) = _records(tmp_path / "nan.jsonl")
    saved = read_checkpoint(tmp_path / "checkpoints" / "periodic-step000006.ckpt", require_metadata=False)
    params = {name for name, _ in task.named_parameters()}
    weights = sum(float(t.double().sum()) for name, t in saved["state_dict"].items() if name in params)
    assert record["after"] == pytest.approx(weights, rel=1e-12)
    assert record["after"] != record["before"]
    assert guard.counts["rollbacks"] == 1
    assert guard.events[0]["rolled_back_to_step"] == 6


def test_a_loss_spike_is_detected_against_the_running_statistic(tmp_path):
    guard = DivergenceGuard(action="skip", spike_action="skip", min_history=5, spike_sigmas=4.0)
    _fit(tmp_path, guard, InjectNaN([9], str(tmp_path / "spike.jsonl"), factor=50.0))
    (record,) = _records(tmp_path / "spike.jsonl")
    assert guard.counts["spikes"] == 1 and guard.counts["nonfinite"] == 0 and guard.counts["skipped"] == 1
    assert guard.events[0]["global_step"] == 9 and math.isfinite(guard.events[0]["loss"])
    assert record["before"] == record["after"]


def test_bad_action_names_the_choices():
    with pytest.raises(ValueError, match="choose one of skip, stop, rollback"):
        DivergenceGuard(action="ignore")


def test_a_run_that_skips_more_than_its_share_of_steps_stops_with_a_report(tmp_path):
    guard = DivergenceGuard(action="skip", max_skipped_share=0.25)
    expected = r"training skipped 4 of 4 steps so far, more than callbacks\.divergence_guard\.max_skipped_share=0\.25"
    with pytest.raises(TrainingDivergedError, match=expected):
        _fit(tmp_path, guard, InjectNaN(list(range(12)), str(tmp_path / "nan.jsonl")), 12)
    report = json.loads((tmp_path / "divergence_report.json").read_text())
    assert report["counts"]["skipped"] == 4 and report["kind"] == "nonfinite"
