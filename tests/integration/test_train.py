"""End to end: a real (tiny) training run through the real config tree."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmexp.artifacts.inference import load_for_inference
from llmexp.tracking.metrics import read_metrics_csv
from llmexp.training.run import train

SMOKE = ("experiment=smoke", "callbacks.samples.max_new_tokens=8")


def test_smoke_run_produces_a_complete_run_folder(make_cfg, tmp_path):
    metrics = train(make_cfg(*SMOKE, "trainer.max_steps=30"))
    run = tmp_path / "run"
    for name in ("metrics.csv", "loss_curve.png", "samples.txt", "tokenizer.json", "final_metrics.json"):
        assert (run / name).stat().st_size > 0, name
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert metrics["step"] == 30 and math.isfinite(metrics["val/bpb"])
    series = read_metrics_csv(run / "metrics.csv")
    train_loss = [v for _, v in series["train/loss"]]
    assert train_loss[-1] < train_loss[0] - 0.3, train_loss
    assert json.loads((run / "final_metrics.json").read_text())["val/loss"] == pytest.approx(metrics["val/loss"])
    samples = (run / "samples.txt").read_text().split("-" * 60)
    assert len(samples) == 3  # the default callbacks continue three prompts taken from the validation split
    from llmexp.data.pydocs import PydocsCorpus

    held_out = " ".join(doc.text for doc in PydocsCorpus().documents("val"))
    assert all(sample.strip().split()[0] in held_out for sample in samples)


def test_checkpoint_alone_rebuilds_model_and_tokenizer(make_cfg, tmp_path):
    train(make_cfg(*SMOKE))
    model, tokenizer, meta = load_for_inference(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert meta["config"]["model"]["n_embd"] == model.config.n_embd == 32
    assert tokenizer.vocab_size == model.config.vocab_size == 512
    assert tokenizer.decode(tokenizer.encode("for x in y:")) == "for x in y:"


def test_resume_continues_the_global_step_and_the_curve(make_cfg, tmp_path):
    stop = ("+callbacks.stop._target_=helpers.StopAtStep", "+callbacks.stop.step=20")
    train(make_cfg(*SMOKE, "trainer.max_steps=40", *stop, run_dir=tmp_path / "a"))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    resumed = train(make_cfg(*SMOKE, "trainer.max_steps=40", f"ckpt_path={ckpt}", run_dir=tmp_path / "b"))
    straight = train(make_cfg(*SMOKE, "trainer.max_steps=40", run_dir=tmp_path / "c"))
    assert resumed["step"] == straight["step"] == 40
    interrupted = read_metrics_csv(tmp_path / "a" / "metrics.csv")["train/loss"]
    continued = read_metrics_csv(tmp_path / "b" / "metrics.csv")["train/loss"]
    uninterrupted = dict(read_metrics_csv(tmp_path / "c" / "metrics.csv")["train/loss"])
    assert max(s for s, _ in interrupted) < 20 <= min(s for s, _ in continued)
    for step, loss in interrupted + continued:
        assert loss == pytest.approx(uninterrupted[step], abs=1e-4), step
    assert resumed["val/loss"] == pytest.approx(straight["val/loss"], abs=1e-4)


def test_block_size_above_the_context_fails_before_training(make_cfg):
    from llmexp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.block_size=512 exceeds model.max_seq_len=256"):
        train(make_cfg(*SMOKE, "data.block_size=512"))


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_command_line_train_then_generate(tmp_path):
    run = tmp_path / "run"
    result = _cli(tmp_path, "llmexp.cli.train", *SMOKE, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / ".hydra" / "config.yaml").exists() and (run / "train.log").exists()
    result = _cli(
        tmp_path,
        "llmexp.cli.generate",
        f"ckpt_path={run}/checkpoints/last.ckpt",
        "prompt=Return a",
        "max_new_tokens=10",
        "num_samples=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Return a") == 2


def test_command_line_rejects_a_typo_before_any_work(tmp_path):
    result = _cli(tmp_path, "llmexp.cli.train", "optimizer.lrr=1e-3", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "llmexp-train: error: optimizer.lrr: no such key; valid keys under optimizer: betas, eps, foreach, "
        "fused, lr, weight_decay (did you mean 'lr'?)"
    )
    assert not (tmp_path / "run").exists()


def test_batch_size_finder_measures_and_sets_the_batch(make_cfg, tmp_path, capsys):
    metrics = train(
        make_cfg(
            *SMOKE,
            "callbacks=minimal",
            "batch_size_finder.enabled=true",
            "batch_size_finder.max_size=8",
            "batch_size_finder.steps=6",
        )
    )
    out = capsys.readouterr().out
    assert "Batch-size finder" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("batch ")]
    assert [int(r.split()[1].rstrip(":")) for r in rows] == [1, 2, 4, 8][: len(rows)] and len(rows) >= 2
    chosen = int(out.split("chosen:")[1].split()[0])
    assert chosen in (1, 2, 4, 8) and metrics["step"] == 20
