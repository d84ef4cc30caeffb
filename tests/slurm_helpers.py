"""Submitting to and watching the local SLURM cluster from tests (sbatch, job states, waiting)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from scale_helpers import read_rows

REPO = Path(__file__).resolve().parents[1]
TINY = ("experiment=smoke", "callbacks=minimal", "trainer.accelerator=cpu", "eval.limit_batches=2")
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "GONE")


def job_env(run_dir: Path, cache_dir: Path) -> dict[str, str]:
    """What slurm/train.sbatch and its tasks inherit (sbatch exports the submitting environment)."""
    return {
        **os.environ,
        "LLMEXP_CACHE_DIR": str(cache_dir),
        "LLMEXP_TRAIN": f"{sys.executable} -m llmexp.cli.train",
        "LLMEXP_RUN_DIR": str(run_dir),
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
    }


def sbatch(env: dict[str, str], out: Path, *args: str) -> subprocess.CompletedProcess:
    command = ["sbatch", "--parsable", f"--output={out}", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


def job_field(job_id: str, field: str) -> str:
    """A field of `scontrol show job` (JobState, NodeList, ...); GONE once SLURM has forgotten the job."""
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    return next((w.split("=", 1)[1] for w in shown.split() if w.startswith(f"{field}=")), "GONE")


def job_state(job_id: str) -> str:
    return job_field(job_id, "JobState")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def preempted_job(
    env: dict[str, str], out: Path, record: Path, signal_after: int, options: Sequence[str], overrides: Sequence[str]
) -> str:
    """`sbatch <options> slurm/train.sbatch <overrides>`, slowed to 0.2 s a step, recording its losses in `record`; once
    `signal_after` steps are recorded send it USR1 (what SLURM sends before preempting a job or at its time limit);
    return the job's log once it has ended, asserting it was requeued and completed."""
    slow = ("+callbacks.slow._target_=scale_helpers.SlowSteps", "+callbacks.slow.seconds=0.2")
    record_loss = ("+callbacks.record._target_=scale_helpers.RecordGlobalLoss", f"+callbacks.record.path={record}")
    result = sbatch(env, out, *options, "slurm/train.sbatch", *overrides, *slow, *record_loss)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    wait_for(lambda: record.exists() and len(read_rows(record)) >= signal_after, 600, f"{signal_after} steps")
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
    wait_for(lambda: job_state(job_id) in ENDED, 900, "the job to end")
    log = out.read_text()
    assert job_state(job_id) == "COMPLETED", log[-3000:]
    assert f"Requeued SLURM job: {job_id}" in log and f"job {job_id} restart 1:" in log
    return log


def assert_resumed_without_gap(record: Path, steps: int, at_least: int) -> None:
    """The steps recorded before the requeue start at 0, those after continue from the checkpoint to `steps`."""
    rows = read_rows(record)
    before = [r["step"] for r in rows if r["restart"] == 0]
    after = [r["step"] for r in rows if r["restart"] == 1]
    assert before == list(range(len(before))) and len(before) >= at_least
    assert 0 < after[0] <= before[-1] + 1, (before[-1], after[0])  # resumed, not restarted, and no gap
    assert after == list(range(after[0], steps))
