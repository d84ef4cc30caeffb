"""Submitting to and watching the local SLURM cluster from tests (sbatch, job states, waiting)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

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
