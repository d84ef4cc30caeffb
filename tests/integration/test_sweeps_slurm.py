"""An Optuna sweep whose trials are 2-task DDP jobs on the local SLURM cluster (slurm/local_cluster.sh)."""

import json
import os
import subprocess
import sys
import time

import pytest

from llmexp.sweeps.storage import STUDY_FILE, load_study
from wandb_records import read_wandb_run

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.distributed]


def test_two_task_ddp_trials_share_one_folder_and_one_logger_run(slurm_cluster, tmp_path, cache_dir):
    sweep = tmp_path / "outputs/sweeps/ddp"
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    command = [
        sys.executable,
        "-m",
        "llmexp.cli.train",
        "-m",
        "hparams_search=optuna",
        "sweep.name=ddp",
        "hydra/launcher=slurm",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.timeout_min=20",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=grid",
        "~hydra.sweeper.params",
        "optimizer.lr=choice(1e-3,3e-3)",
        "strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "experiment=smoke",
        "callbacks=minimal",
        "logger=wandb",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "scheduler.warmup_steps=2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    trials = load_study(str(sweep / STUDY_FILE), "ddp").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(sorted(t.intermediate_values) == [3, 6] for t in trials)  # reported from the job through the storage
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0", "1"]
    for trial in trials:
        job = sweep / str(trial.number)
        assert json.loads((job / "final_metrics.json").read_text())["step"] == 6
        (offline,) = (job / "wandb").glob("offline-run-*")  # one logger run for both ranks
        assert read_wandb_run(offline).run["run_group"] == "ddp"
    logs = (sweep / ".submitit").rglob("*_log.*")
    second_ranks = {p.name.split("_log.")[0] for p in logs if "MEMBER: 2/2" in p.read_text()}
    # each job ran its second DDP rank as a second SLURM task (<job>_<array index>_<task>, in its .out or .err)
    assert sorted(name.rsplit("_", 1)[1] for name in second_ranks) == ["1", "1"]
    summary = (sweep / "summary.md").read_text()
    assert "2 of 2 jobs ok" in summary and "Re-run: `llmexp-train" in summary


def test_a_preempted_trial_is_requeued_and_resumes_from_its_checkpoint(slurm_cluster, tmp_path, cache_dir):
    sweep = tmp_path / "outputs/sweeps/pre"
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cache_dir)}
    command = [
        sys.executable,
        "-m",
        "llmexp.cli.train",
        "-m",
        "hparams_search=optuna",
        "sweep.name=pre",
        "hydra/launcher=slurm",
        "hydra.sweeper.n_trials=1",
        "~hydra.sweeper.params",
        "experiment=smoke",
        "callbacks=minimal",
        "logger=csv",
        "trainer.max_steps=300",
        "trainer.val_check_interval=20",
        "scheduler.warmup_steps=2",
    ]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 900
        while not (sweep / "0" / "checkpoints" / "last.ckpt").exists():
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:] if proc.stdout else ""
            time.sleep(0.5)
        (job,) = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir()]
        subprocess.run(["scancel", "--signal=USR2", job], check=True)  # what SLURM sends before preemption/time limit
        output, _ = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-4000:]
    trial = load_study(str(sweep / STUDY_FILE), "pre").trials[0]
    assert trial.state.name == "COMPLETE"
    assert json.loads((sweep / "0" / "final_metrics.json").read_text())["step"] == 300
    # SLURM may truncate the job's own log files when it restarts the job; the run's train.log is appended to.
    logs = "".join(p.read_text() for p in [*(sweep / ".submitit").rglob("*_log.*"), sweep / "0" / "train.log"])
    assert "before submitit requeues the job" in logs and "hpc_ckpt_1.ckpt" in logs
    assert "Restoring states from the checkpoint path" in logs or "Restored all states" in logs
