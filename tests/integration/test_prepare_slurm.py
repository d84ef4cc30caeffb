"""`llmexp-prepare executor=slurm` on the real one-node cluster (slurm/local_cluster.sh, started by the
`slurm_cluster` fixture): every stage as a 3-task array gives the local run's shards byte for byte, and a task
killed mid-way is resubmitted alone."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_prepare import _shard_bytes, edit_one_word, prose, write_jsonl

from llmexp.prepare.sources import FileSource

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
REPO = Path(__file__).resolve().parents[2]


def corpus(root: Path) -> None:
    """Nine files with duplicates across them; the fifth (task 1's second unit) is large, so task 1 is surely
    mid-way once its first unit is written."""
    rng = random.Random(11)
    docs = [prose(rng, 150) for _ in range(160)]
    for i in range(9):
        mine = [*docs[i * 16 : (i + 1) * 16], edit_one_word(docs[(i * 7) % 150]), docs[(i * 5) % 150]]
        if i == 4:
            mine += [prose(rng, 400) for _ in range(600)]
        write_jsonl(root / f"part{i}.jsonl", mine)


def running_task(job_name: str) -> str | None:
    """The SLURM job id of task 1 of the array named job_name, while it runs."""
    shown = subprocess.run(
        ["squeue", "-h", "-r", "-n", job_name, "-t", "R", "-o", "%i %A"], capture_output=True, text=True
    )
    return next(
        (job for task, job in (line.split() for line in shown.stdout.splitlines()) if task.endswith("_1")), None
    )


def kill_task(task: str) -> None:
    """SIGKILL every process of an array task, as the OOM killer or a lost node would (scancel sends SIGTERM
    first, which submitit's tasks ride out until SLURM's KillWait)."""
    listed = subprocess.run(["scontrol", "listpids", task], capture_output=True, text=True, check=True).stdout
    for pid in [int(line.split()[0]) for line in listed.splitlines()[1:] if line.split()]:
        subprocess.run(["kill", "-9", str(pid)], capture_output=True)


def test_a_three_task_array_matches_the_local_run_and_a_killed_task_reruns_alone(slurm_cluster, tmp_path):
    (tmp_path / "corpus").mkdir()
    corpus(tmp_path / "corpus")
    name = f"slurmtest-{uuid.uuid4().hex[:8]}"
    args = [
        f"source.paths=[{tmp_path / 'corpus'}]",
        f"name={name}",
        "tokenizer.vocab_size=300",
        "progress=false",
        "pack.shard_tokens=40000",
        "val_fraction=0.1",
    ]
    local = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.prepare", *args, "num_workers=0", f"hydra.run.dir={tmp_path / 'local'}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert local.returncode == 0, local.stderr[-3000:]

    out = tmp_path / "slurm"
    driver = subprocess.Popen(  # the driver through the job script, run directly (it holds no CPU of the node)
        [
            "bash",
            str(REPO / "slurm" / "prepare.sbatch"),
            *args,
            "executor.tasks=3",
            "executor.mem_gb=1",
            "executor.poll_s=0.3",
            f"hydra.run.dir={out}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LLMEXP_PREPARE": f"{sys.executable} -m llmexp.cli.prepare"},
    )
    first_of_task1 = FileSource([str(tmp_path / "corpus")]).units()[1].uid
    killed, deadline = None, time.time() + 300
    while killed is None and time.time() < deadline and driver.poll() is None:
        task = running_task(f"llmexp-prepare-{name}-read")
        if task and list(out.glob(f"work/clean-*/{first_of_task1}.arrow")):
            kill_task(task)
            killed = task
        time.sleep(0.1)
    logged, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err[-3000:]
    assert killed is not None, "task 1 of the read stage was not caught running"
    assert logged.startswith("llmexp: prepare driver")
    assert "read: task(s) [1] of 3 ended unfinished" in logged and "resubmitting each alone" in logged, logged[-3000:]
    assert len(list((out / "work" / "slurm" / "read").glob("*_submission.sh"))) == 2  # the array, then task 1 alone
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "local")
    assert len(list((out / "shards").glob("train-*.bin"))) > 1
    assert not list(out.rglob(".*.tmp*"))
