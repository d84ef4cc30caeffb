"""Sweeps end to end: pre-flight stops a bad sweep before launch; an Optuna study survives failures, kills, pruning."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from llmexp.preflight import run_preflight
from llmexp.sweeps.storage import STUDY_FILE, load_study
from wandb_records import read_wandb_run

SMALL = (
    "experiment=smoke",
    "callbacks=minimal",
    "logger=csv",
    "trainer.max_steps=10",
    "trainer.val_check_interval=5",
    "scheduler.warmup_steps=2",
)


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "LLMEXP_CACHE_DIR": str(cache), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmexp.cli.train", "-m", *SMALL, *args]


def _sweep(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), capture_output=True, text=True, env=_env(cache), cwd=cwd, timeout=900)


def _study(sweep: Path) -> optuna.Study:
    return load_study(str(sweep / STUDY_FILE), sweep.name)


@pytest.mark.slow
def test_preflight_names_the_bad_trial_and_submits_nothing(tmp_path, cache_dir):
    # a trial only the model's own checks refuse (a bad value alone, like n_head=3, is refused before pre-flight)
    result = _sweep(tmp_path, cache_dir, "data.block_size=64,4096", "--preflight")
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    bad = lines.index(next(line for line in lines if "PROBLEM" in line))
    assert "data.block_size=4096" in lines[bad - 1] and "data.block_size=64" not in lines[bad - 1]
    expected = "data.block_size=4096 exceeds model.max_seq_len=256; lower data.block_size or raise model.max_seq_len"
    assert lines[bad].strip() == f"PROBLEM: invalid: {expected}"
    assert "pre-flight FAILED: trial(s) [1] cannot run" in result.stdout
    assert "nothing submitted" in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_preflight_runs_one_tiny_step_of_the_first_trial(cache_dir, monkeypatch):
    monkeypatch.setenv("LLMEXP_CACHE_DIR", str(cache_dir))
    report = run_preflight("train", ["experiment=smoke", "optimizer.lr=1e-3,2e-3"])
    assert report.ok and len(report.trials) == 2
    assert report.tiny_step.startswith("ok (step 1, loss"), report.tiny_step


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on_in_one_wandb_group(tmp_path, cache_dir):
    result = _sweep(
        tmp_path,
        cache_dir,
        "hparams_search=optuna",
        "sweep.name=s",
        "hydra/sweeper/sampler=grid",
        "~hydra.sweeper.params",
        "data.block_size=choice(64,512)",  # 512 exceeds gpt_tiny's context: that trial fails
        "logger=wandb",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        r["params"]["data.block_size"]: r for r in json.loads((tmp_path / "outputs/sweeps/s/trials.json").read_text())
    }
    assert rows[512]["state"] == "fail" and "data.block_size=512 exceeds model.max_seq_len=256" in rows[512]["error"]
    assert rows[64]["state"] == "complete" and rows[64]["value"] > 0
    assert (Path(rows[64]["run_dir"]) / "final_metrics.json").is_file()
    summary = (tmp_path / "outputs/sweeps/s/summary.md").read_text()
    assert "1 of 2 jobs ok" in summary and "failed" in summary and "exceeds model.max_seq_len" in summary
    (offline,) = (Path(rows[64]["run_dir"]) / "wandb").glob("offline-run-*")
    run = read_wandb_run(offline).run
    assert run["run_group"] == "s" and "data.block_size=64" in run["display_name"]  # the sweep's group (its name)
    assert not [t for t in run["tags"] if "sweep." in t or "hydra" in t]


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path, cache_dir):
    sweep = tmp_path / "outputs/sweeps/k"
    args = ("hparams_search=optuna", "hydra.sweeper.n_trials=3", "trainer.max_steps=40")
    proc = subprocess.Popen(
        _command(*args, "sweep.name=k"),
        env=_env(cache_dir),
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 600
        while not ((sweep / "0/final_metrics.json").is_file() and (sweep / "1").is_dir()):
            assert proc.poll() is None and time.time() < deadline, "the sweep ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = (sweep / "0/final_metrics.json").stat().st_mtime_ns
    assert [t.state for t in _study(sweep).trials][:2] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.RUNNING,
    ]

    result = _sweep(tmp_path, cache_dir, *args, f"sweep.resume={sweep}")  # a new sweep.name: the folder decides
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 trial(s) finished, 2 to go" in result.stdout + result.stderr
    trials = _study(sweep).trials
    states = [t.state.name for t in trials]
    assert (sweep / "0/final_metrics.json").stat().st_mtime_ns == first  # trial 0 was not run again
    if trials[1].user_attrs.get("interrupted"):  # killed mid-trial: it runs again, with the same parameters
        assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
        assert trials[2].params == trials[1].params
    else:  # it had just finished when the kill came: its result is taken from its folder
        assert states == ["COMPLETE", "COMPLETE", "COMPLETE"]
    assert all(t.params != trials[0].params for t in trials[1:])
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [str(t.number) for t in trials]


@pytest.mark.slow
def test_the_median_pruner_stops_a_trial_worse_than_the_study(tmp_path, cache_dir):
    sweep = tmp_path / "outputs/sweeps/p"
    common = ("hparams_search=optuna", "sweep.name=p", "sweep.pruner.n_startup_trials=1", "~hydra.sweeper.params")
    good = _sweep(tmp_path, cache_dir, *common, "hydra.sweeper.n_trials=1", "optimizer.lr=3e-3")
    assert good.returncode == 0, good.stderr[-3000:]
    # Resumed with a learning rate too small to learn: at its first validation it is worse than trial 0 was.
    bad = _sweep(tmp_path, cache_dir, *common, "hydra.sweeper.n_trials=2", "optimizer.lr=1e-7", f"sweep.resume={sweep}")
    assert bad.returncode == 0, bad.stderr[-3000:]
    trials = _study(sweep).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert sorted(trials[0].intermediate_values) == [5, 10] and list(trials[1].intermediate_values) == [5]
    assert trials[1].intermediate_values[5] > trials[0].intermediate_values[5]
    rows = json.loads((sweep / "trials.json").read_text())
    assert [r["state"] for r in rows] == ["complete", "pruned"]
    assert json.loads((sweep / "1/final_metrics.json").read_text())["step"] == 5  # it stopped at the pruning point
    best = json.loads((sweep / "best_trial.json").read_text())
    assert best["number"] == 0 and best["config"] == str(sweep / "0/config.yaml")
    assert best["command"].startswith("llmexp-train experiment=smoke") and "optimizer.lr=3e-3" in best["command"]
    assert "sweep." not in best["command"] and "hparams_search" not in best["command"]
    summary = (sweep / "summary.md").read_text()
    assert "| 1 | pruned |" in summary and "| 0 | ok |" in summary
    assert f"Re-run: `{best['command']}`" in summary and f"Re-run: `{best['command']}`" in bad.stdout
