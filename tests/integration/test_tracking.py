"""Tracking end to end: W&B offline files, throughput metrics, and llmexp-compare over a real multirun."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmexp.tracking.metrics import read_metrics_csv
from llmexp.tracking.runs import discover_runs
from llmexp.tracking.wandb_offline import read_offline_run
from llmexp.training.run import train

FAKE_KEY = "sk-llmexp-FAKE-0123456789abcdef"


def _train_cli(tmp_path: Path, *args: str, multirun: bool = False) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LLMEXP_CACHE_DIR": str(tmp_path / "cache"),
        "WANDB_API_KEY": "",
        "HF_TOKEN": FAKE_KEY,
        "WANDB_SILENT": "true",
    }
    cmd = [
        sys.executable,
        "-m",
        "llmexp.cli.train",
        *(["-m"] if multirun else []),
        "experiment=smoke",
        "callbacks.samples.max_new_tokens=4",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


@pytest.mark.slow
def test_wandb_offline_run_holds_config_and_metrics_and_no_secret(tmp_path):
    run = tmp_path / "outputs" / "run"
    result = _train_cli(
        tmp_path,
        "logger=wandb",
        "logger.project=llm",
        "logger.group=lr-sweep",
        f"+extra.api_key={FAKE_KEY}",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (offline_dir,) = (run / "wandb").glob("offline-run-*")
    offline = read_offline_run(offline_dir)
    assert offline.project == "llm" and offline.group == "lr-sweep" and "experiment=smoke" in offline.tags
    assert offline.config["model"]["n_embd"] == 32 and offline.config["extra"]["api_key"] == "***"
    assert offline.summary["val/loss"] == pytest.approx(read_metrics_csv(run / "metrics.csv")["val/loss"][-1][1])
    assert any("train/loss" in row for row in offline.history)
    leaks = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == []


def test_wandb_settings_have_a_short_form_and_the_long_form_still_wins(make_cfg):
    cfg = make_cfg("logger=wandb", "logger.project=llm", "logger.group=lr-sweep", "logger.tags=[a,b]")
    assert (cfg.logger.wandb.project, cfg.logger.wandb.group, list(cfg.logger.wandb.tags)) == (
        "llm",
        "lr-sweep",
        ["a", "b"],
    )
    cfg = make_cfg("logger=wandb", "logger.group=short", "logger.wandb.group=long")
    assert cfg.logger.wandb.group == "long"


def test_throughput_metrics_are_logged(make_cfg, tmp_path):
    train(
        make_cfg(
            "experiment=smoke",
            "trainer.max_steps=30",
            "callbacks.samples.max_new_tokens=4",
            "callbacks.throughput.window=5",
        )
    )
    series = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    for key in ("perf/tokens_per_sec", "perf/mfu", "perf/data_wait_frac", "perf/peak_mem_gb", "train/grad_norm"):
        assert series.get(key), key
    tokens_per_sec = [v for _, v in series["perf/tokens_per_sec"]]
    assert all(v > 0 for v in tokens_per_sec)
    assert all(0 < v < 1 for _, v in series["perf/mfu"])


@pytest.mark.slow
def test_compare_a_multirun_sweep(tmp_path):
    sweep = tmp_path / "outputs" / "sweep"
    result = _train_cli(
        tmp_path, "optimizer.lr=1e-3,3e-3", "model.n_layer=1,2", f"hydra.sweep.dir={sweep}", multirun=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = discover_runs([sweep])
    assert sorted(r.name for r in runs) == ["0", "1", "2", "3"]
    result = subprocess.run([sys.executable, "-m", "llmexp.cli.compare", str(sweep)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = (sweep / "compare.txt").read_text().splitlines()
    assert lines[0].split()[:3] == ["run", "model.n_layer", "optimizer.lr"]
    body = [line.split() for line in lines[2:]]
    assert sorted((row[1], row[2]) for row in body) == [("1", "0.001"), ("1", "0.003"), ("2", "0.001"), ("2", "0.003")]
    val_losses = [float(row[3]) for row in body]
    assert val_losses == sorted(val_losses)
    for row in body:
        run = next(r for r in runs if r.name == row[0])
        assert float(row[3]) == pytest.approx(run.final["val/loss"], abs=1e-4)
    html = (sweep / "compare.html").read_text()
    assert "data:image/png;base64," in html and html.count("<tr>") == 5
    assert (sweep / "compare.png").stat().st_size > 10_000


def test_compare_reports_missing_folders(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.compare", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert result.returncode == 2 and "no such folder" in result.stderr


def test_provenance_is_recorded_and_diffed(make_cfg, tmp_path):
    import json

    import torch

    from llmexp.tokenizer import Tokenizer
    from llmexp.tracking.diff import diff_records, load_record

    for name, lr in (("a", "1e-3"), ("b", "2e-3")):
        train(make_cfg("experiment=smoke", "callbacks=minimal", f"optimizer.lr={lr}", run_dir=tmp_path / name))
    provenance = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert provenance["packages"]["torch"] == torch.__version__
    assert provenance["all_packages"]["lightning"]
    assert provenance["tokenizer_sha256"] == Tokenizer.load(tmp_path / "a" / "tokenizer.json").sha256()
    assert provenance["data_fingerprint"]
    a, b = load_record(tmp_path / "a"), load_record(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert [k for k, _, _ in diff_records(a, b)] == ["config.optimizer.lr"]
    provenance["packages"]["torch"] = "0.0.1"
    provenance["git"] = {"commit": "abc", "dirty": not provenance["git"].get("dirty", False)}
    (tmp_path / "a" / "provenance.json").write_text(json.dumps(provenance))
    keys = [k for k, _, _ in diff_records(load_record(tmp_path / "a"), load_record(tmp_path / "b"))]
    assert {"provenance.packages.torch", "provenance.git.commit", "provenance.git.dirty", "config.optimizer.lr"} <= set(
        keys
    )
