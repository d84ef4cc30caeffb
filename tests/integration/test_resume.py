"""Resume as a user does it: `llmexp-train resume=<run folder>` and the README's `ckpt_path=<checkpoint>` form both
continue the run in its own folder, with its own config, the step count continuous and the loss curve that of an
uninterrupted run; a changed data setting is named in one warning line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parents[1]
COMMON = (
    "experiment=smoke",
    "trainer.max_steps=12",
    "trainer.val_check_interval=6",
    "callbacks.periodic_checkpoint.every_n_train_steps=3",
)
STOP = ("+callbacks.stop._target_=helpers.StopAtStep", "+callbacks.stop.step=6")


def train(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LLMEXP_CACHE_DIR": str(cache),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def losses(path: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in map(json.loads, path.read_text().splitlines())}


def record(path: Path) -> tuple[str, str]:
    return ("+callbacks.record._target_=helpers.RecordLoss", f"+callbacks.record.path={path}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir) -> dict[int, float]:
    folder = tmp_path_factory.mktemp("reference")
    train(folder, cache_dir, *COMMON, *record(folder / "loss.jsonl"), f"hydra.run.dir={folder / 'run'}")
    return losses(folder / "loss.jsonl")


@pytest.mark.slow
def test_resume_continues_the_run_in_its_folder_with_its_config(tmp_path, cache_dir, reference):
    run = tmp_path / "run"
    train(tmp_path, cache_dir, *COMMON, *STOP, *record(tmp_path / "loss.jsonl"), f"hydra.run.dir={run}")
    assert json.loads((run / "final_metrics.json").read_text())["step"] == 6

    resumed = train(tmp_path, cache_dir, f"resume={run}", "~callbacks.stop")
    assert f"continuing the run in {run}" in resumed.stderr
    assert not (tmp_path / "outputs" / "runs").exists()  # no new run folder
    assert json.loads((run / "final_metrics.json").read_text())["step"] == 12
    replayed = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert "experiment=smoke" in replayed and "trainer.max_steps=12" in replayed  # the run's own settings
    steps = losses(tmp_path / "loss.jsonl")
    assert sorted(steps) == list(range(1, 13))  # continuous, nothing trained twice
    for step, loss in steps.items():
        assert loss == pytest.approx(reference[step], abs=1e-5), step
    output = resumed.stdout + resumed.stderr
    assert "not resumable" not in output and "weights_only" not in output


@pytest.mark.slow
def test_the_readme_checkpoint_form_resumes_too_and_names_a_changed_setting(tmp_path, cache_dir):
    run = tmp_path / "run"
    first = (*COMMON, *STOP, f"hydra.run.dir={run}")
    train(tmp_path, cache_dir, *first)
    last = run / "checkpoints" / "last.ckpt"
    resumed = train(tmp_path, cache_dir, *COMMON, f"ckpt_path={last}", "~callbacks.stop", "data.block_size=32")
    warnings = [line for line in resumed.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "data.block_size=32" in warnings[0] and "the run had" in warnings[0]
    assert json.loads((run / "final_metrics.json").read_text())["step"] == 12
    assert not (tmp_path / "outputs" / "runs").exists()


def test_a_model_change_on_resume_is_refused_in_one_line(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["experiment=smoke"]))
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", f"resume={run}", "model.n_layer=8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "model.n_layer=8 would change what the checkpoint holds" in line
