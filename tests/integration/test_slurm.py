"""On a real SLURM cluster (slurm/local_cluster.sh, started by the `slurm_cluster` fixture): a 2-task DDP job, a
multirun through the submitit launcher, and a job preempted part-way that requeues and resumes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from slurm_helpers import TINY, assert_resumed_without_gap, preempted_job, sbatch
from slurm_helpers import job_env as slurm_job_env

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture
def job_env(tmp_path: Path, cache_dir: Path) -> dict[str, str]:
    return slurm_job_env(tmp_path / "run", cache_dir)


def test_sbatch_two_task_ddp_job_trains_to_completion(slurm_cluster, job_env, tmp_path):
    out = tmp_path / "job.out"
    result = sbatch(
        job_env,
        out,
        "--wait",
        "--ntasks-per-node=2",
        "slurm/train.sbatch",
        *TINY,
        "strategy=ddp",
        "data.batch_size=4",
        "trainer.max_steps=10",
    )
    log = out.read_text() if out.exists() else ""
    assert result.returncode == 0, (result.stderr, log[-3000:])
    assert "1 node(s) x 2 task(s)" in log
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log  # Lightning took its ranks from SLURM
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["step"] == 10
    assert final["train/tokens"] == 10 * 4 * 64 * 2  # steps x batch x block x world size


def test_preempted_job_checkpoints_requeues_and_resumes_with_a_continuous_step_count(slurm_cluster, job_env, tmp_path):
    record, steps = tmp_path / "steps.jsonl", 60
    preempted_job(
        job_env, tmp_path / "job.out", record, 10, ("--ntasks-per-node=1",), (*TINY, f"trainer.max_steps={steps}")
    )
    assert_resumed_without_gap(record, steps, at_least=10)
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["step"] == steps
    assert not list((tmp_path / "run").glob("hpc_ckpt_*.ckpt"))  # the requeue checkpoint is gone once finished


def test_multirun_through_the_submitit_slurm_launcher_runs_four_jobs_and_writes_a_summary(
    slurm_cluster, job_env, tmp_path
):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmexp.cli.train",
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.mem_gb=2",
            f"hydra.sweep.dir={sweep}",
            *TINY,
            "trainer.max_steps=10",
            "optimizer.lr=1e-3,3e-3",
            "data.batch_size=4,8",
        ],
        capture_output=True,
        text=True,
        env=job_env,
        cwd=tmp_path,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 4  # four SLURM jobs returned
    with open(sweep / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    grid = {(float(r["optimizer.lr"]), int(r["data.batch_size"])) for r in rows}
    assert grid == {(lr, bs) for lr in (1e-3, 3e-3) for bs in (4, 8)}
    losses = [float(r["val/loss"]) for r in rows]
    assert losses == sorted(losses)  # best first
    for row in rows:
        final = json.loads((sweep / row["job"] / "final_metrics.json").read_text())
        assert float(row["val/loss"]) == pytest.approx(final["val/loss"], rel=1e-5)
    assert "4 of 4 jobs ok" in (sweep / "summary.md").read_text()
