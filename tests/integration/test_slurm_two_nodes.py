"""On a real two-node SLURM cluster (`slurm/local_cluster.sh start --nodes 2`: node1 and node2, each slurmd in a
network namespace of its own): DDP and FSDP2 jobs across both nodes train the one-process curve, a sweep's trials
each span both nodes, and a two-node job sent USR1 requeues and resumes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scale_helpers import CURVE, CURVE_STEPS, read_losses, record_loss
from slurm_helpers import (
    ENDED,
    TINY,
    assert_resumed_without_gap,
    job_env,
    job_field,
    job_state,
    preempted_job,
    sbatch,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.distributed]


@pytest.fixture(scope="module")
def two_node_jobs(slurm_two_nodes, one_process_curve, tmp_path_factory, cache_dir) -> tuple[Path, dict[str, str]]:
    """A DDP and an FSDP2 job of scale_helpers.CURVE, one task on each node (4 samples per task); each records its
    per-step global loss in <folder>/<strategy>.jsonl. The one-process reference trains meanwhile."""
    root = tmp_path_factory.mktemp("two_nodes")
    jobs = {}
    for strategy in ("ddp", "fsdp2"):
        result = sbatch(
            job_env(root / strategy, cache_dir),
            root / f"{strategy}.out",
            "--nodes=2",
            "--ntasks-per-node=1",
            "slurm/train.sbatch",
            *CURVE,
            f"strategy={strategy}",
            "data.batch_size=4",
            "data.val_batch_size=8",
            *record_loss(root / f"{strategy}.jsonl"),
        )
        assert result.returncode == 0, result.stderr
        jobs[strategy] = result.stdout.strip()
    for job in jobs.values():
        wait_for(lambda job=job: job_state(job) in ENDED, 600, f"job {job} to end")
    return root, jobs


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_a_job_across_two_nodes_trains_the_one_process_curve(two_node_jobs, one_process_curve, strategy):
    root, jobs = two_node_jobs
    log = (root / f"{strategy}.out").read_text()
    assert job_state(jobs[strategy]) == "COMPLETED", log[-3000:]
    assert job_field(jobs[strategy], "NodeList") == "node[1-2]" and "2 node(s) x 1 task(s)" in log
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    reference, curve = one_process_curve.losses(), read_losses(root / f"{strategy}.jsonl")
    assert sorted(curve) == sorted(reference) == list(range(CURVE_STEPS))
    for step, loss in curve.items():
        assert loss == pytest.approx(reference[step], abs=1e-6), (step, loss, reference[step])
    assert reference[CURVE_STEPS - 1] < reference[0] - 0.05  # the curve being compared actually moves


def test_a_sweep_runs_each_trial_on_both_nodes_and_shows_its_jobs(slurm_two_nodes, tmp_path, cache_dir):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    command = [sys.executable, "-m", "llmexp.cli.train", "-m", "hydra/launcher=slurm", "hydra.launcher.nodes=2"]
    command += [f"hydra.sweep.dir={sweep}", *TINY, "trainer.max_steps=4", "trainer.val_check_interval=4"]
    command += ["strategy=ddp", "logger=wandb", "optimizer.lr=1e-3,3e-3"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0", "1"]
    for trial in ("0", "1"):
        folder = sweep / trial
        assert json.loads((folder / "final_metrics.json").read_text())["step"] == 4
        assert yaml.safe_load((folder / "config.yaml").read_text())["trainer"]["num_nodes"] == 2  # from the job
        assert len(list((folder / "wandb").glob("offline-run-*"))) == 1  # one logger run for both nodes
    jobs = sorted(p for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(jobs) == 2
    for job in jobs:
        logs = "".join(p.read_text() for p in job.glob("*_log.*"))
        assert {"node1", "node2"} == set(re.findall(r"JobEnvironment\(job_id=\S+, hostname=(node\d)", logs))
        # the sweep showed the job running on both nodes, with the log to read
        assert f"job {job.name}: RUNNING on node[1-2], log {job / f'{job.name}_0_log.out'}" in output
    assert "Bypassing" not in output and "accounting storage is disabled" not in output


def test_a_two_node_job_sent_usr1_requeues_and_resumes_with_a_continuous_step_count(
    slurm_two_nodes, tmp_path, cache_dir
):
    record, steps = tmp_path / "steps.jsonl", 16
    options = ("--nodes=2", "--ntasks-per-node=1")
    overrides = (*TINY, "strategy=ddp", "data.batch_size=4", f"trainer.max_steps={steps}")
    log = preempted_job(job_env(tmp_path / "run", cache_dir), tmp_path / "job.out", record, 5, options, overrides)
    assert "restart 1: 2 node(s) x 1 task(s)" in log
    assert_resumed_without_gap(record, steps, at_least=5)
    assert json.loads((tmp_path / "run" / "final_metrics.json").read_text())["step"] == steps
