"""Faults injected into real `llmexp-train` processes: kill -9 at random steps, a crash inside a checkpoint write,
a truncated checkpoint, termination signals (a signal before training: into this process). What survives is checked
step for step against an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from command_line import run_command
from llmexp.artifacts.checkpoint import read_checkpoint
from llmexp.cli import train

TESTS = Path(__file__).resolve().parents[1]
STEPS = 24
BASE = (
    "experiment=smoke",
    "callbacks=minimal",
    "logger=none",
    "model.dropout=0.1",  # random numbers in every step: the generators' states must be restored too
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=8",
    "callbacks.periodic_checkpoint.every_n_train_steps=3",
    "eval.final_validation=false",
)


def _entry() -> list[str]:
    script = Path(sys.executable).parent / "llmexp-train"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmexp.cli.train"]


class Run:
    """One run folder, trained by a sequence of `llmexp-train` processes; every step's loss lands in losses.jsonl."""

    def __init__(self, run_dir: Path, cache_dir: Path, *overrides: str, throttle: float = 0.05, base=BASE):
        self.dir, self.records = run_dir, run_dir / "losses.jsonl"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.args = [
            *_entry(),
            *base,
            f"hydra.run.dir={run_dir}",
            "+callbacks.record._target_=helpers.RecordLoss",
            f"+callbacks.record.path={self.records}",
            "+callbacks.throttle._target_=helpers.Throttle",
            f"+callbacks.throttle.seconds={throttle}",
            *overrides,
        ]
        pythonpath = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, "PYTHONPATH": pythonpath, "LLMEXP_CACHE_DIR": str(cache_dir)}
        self.attempts = 0

    def start(self, *overrides: str) -> subprocess.Popen:
        self.attempts += 1
        log = open(self.dir / f"attempt{self.attempts}.log", "w")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(
            [*self.args, *overrides], stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def log(self, tail: int | None = 4000) -> str:
        text = (self.dir / f"attempt{self.attempts}.log").read_text()
        return text[-tail:] if tail else text

    def losses(self) -> list[dict]:
        if not self.records.exists():
            return []
        return [json.loads(line) for line in self.records.read_text().splitlines() if line.endswith("}")]

    def wait_for_step(self, process: subprocess.Popen, step: int, timeout: float = 600) -> None:
        """Until this process has recorded `step` (no fixed sleeps: the machine may be slow)."""
        deadline = time.monotonic() + timeout
        while not any(r["pid"] == process.pid and r["step"] >= step for r in self.losses()):
            assert process.poll() is None, f"exited with {process.returncode} before step {step}:\n{self.log()}"
            assert time.monotonic() < deadline, f"step {step} not reached in {timeout}s:\n{self.log()}"
            time.sleep(0.02)

    def finish(self, process: subprocess.Popen, timeout: float = 600) -> None:
        assert process.wait(timeout) == 0, self.log()


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the whole job, DDP ranks included, as a scheduler would
    process.wait(60)


def _reference(tmp_path: Path, cache_dir: Path, *overrides: str) -> dict[int, float]:
    run = Run(tmp_path / "uninterrupted", cache_dir, *overrides, throttle=0.0)
    run.finish(run.start())
    return {r["step"]: r["loss"] for r in run.losses()}


def _kill_and_resume(tmp_path: Path, cache_dir: Path, kills: list[int], *overrides: str) -> Run:
    run = Run(tmp_path / "interrupted", cache_dir, *overrides)
    for step in kills:
        process = run.start("ckpt_path=auto")
        run.wait_for_step(process, step)
        _kill(process)
        assert process.returncode == -signal.SIGKILL
    run.finish(run.start("ckpt_path=auto"))
    return run


def _assert_identical(run: Run, reference: dict[int, float], kills: list[int]) -> None:
    records = run.losses()
    assert sorted(reference) == list(range(1, STEPS + 1))
    assert {r["step"] for r in records} == set(reference)
    mismatched = [(r["step"], r["loss"], reference[r["step"]]) for r in records if r["loss"] != reference[r["step"]]]
    assert not mismatched, f"kills at {kills}: (step, resumed, uninterrupted) {mismatched}"
    pids = list(dict.fromkeys(r["pid"] for r in records))
    assert len(pids) == len(kills) + 1
    for pid in pids[1:]:  # each resumed process continued from a checkpoint, not from step 1
        assert min(r["step"] for r in records if r["pid"] == pid) > 1


@pytest.mark.slow
def test_kill_9_at_random_steps_then_resume_gives_the_uninterrupted_curve(tmp_path, cache_dir):
    kills = sorted(random.sample(range(4, STEPS - 4), 3))
    reference = _reference(tmp_path, cache_dir)
    run = _kill_and_resume(tmp_path, cache_dir, kills)
    _assert_identical(run, reference, kills)


@pytest.mark.slow
@pytest.mark.distributed
def test_kill_9_a_two_process_ddp_run_then_resume_gives_the_uninterrupted_curve(tmp_path, cache_dir):
    ddp = ("strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu")
    kills = sorted(random.sample(range(4, STEPS - 4), 2))
    reference = _reference(tmp_path, cache_dir, *ddp)
    run = _kill_and_resume(tmp_path, cache_dir, kills, *ddp)
    _assert_identical(run, reference, kills)


@pytest.mark.slow
def test_a_crash_inside_a_checkpoint_write_leaves_the_previous_one_and_resume_skips_a_truncated_file(
    tmp_path, cache_dir
):
    run = Run(tmp_path / "run", cache_dir)
    # Writes: periodic 3, last 3, periodic 6, last 6, then the 5th (the best by val/loss at step 8) is killed half-way.
    crashed = run.start("+callbacks.crash._target_=helpers.CrashDuringSave", "+callbacks.crash.on_save=5")
    assert crashed.wait(600) == -signal.SIGKILL, run.log()
    checkpoints = run.dir / "checkpoints"
    assert read_checkpoint(checkpoints / "last.ckpt")["global_step"] == 6
    kept = sorted(p.name for p in checkpoints.glob("*.ckpt"))
    assert kept == ["last.ckpt", "periodic-step000003.ckpt", "periodic-step000006.ckpt"]
    assert list(checkpoints.glob(".step000008.ckpt.tmp-*"))  # the half-written temporary, never renamed
    # Damage last.ckpt as a non-atomic writer or a failing disk would: resume must pass over it.
    last = checkpoints / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    run.finish(run.start("ckpt_path=auto"))
    log = run.log(tail=None)
    assert "skipping a checkpoint that cannot be resumed from" in log and "last.ckpt" in log
    assert "periodic-step000006.ckpt" in log.split("resuming from")[1].splitlines()[0]
    resumed = [r for r in run.losses() if r["pid"] != run.losses()[0]["pid"]]
    assert resumed[0]["step"] == 7 and resumed[-1]["step"] == STEPS
    assert not list(checkpoints.glob(".*.tmp-*"))  # the next write of that file removed the stale temporary


@pytest.mark.slow
def test_termination_signals_save_and_exit_cleanly_then_the_run_continues(tmp_path, cache_dir):
    run = Run(tmp_path / "run", cache_dir)
    stopped_at = []
    for signum, step in ((signal.SIGUSR1, 5), (signal.SIGTERM, 14)):
        process = run.start("ckpt_path=auto")
        run.wait_for_step(process, step)
        process.send_signal(signum)
        run.finish(process)
        assert f"Preempted by {signum.name} after step" in run.log()
        last = read_checkpoint(run.dir / "checkpoints" / "last.ckpt")
        assert last["global_step"] == run.losses()[-1]["step"] >= step
        stopped_at.append(last["global_step"])
    run.finish(run.start("ckpt_path=auto"))
    steps = [r["step"] for r in run.losses()]
    assert steps == list(range(1, STEPS + 1)), f"stopped at {stopped_at}"  # no step lost, none repeated


def _metrics(run: Run) -> list[tuple[int, str]]:
    """(step, train or val) of every row of the run's metrics.csv."""
    with open(run.dir / "metrics.csv", newline="") as handle:
        return [(int(r["step"]), "val" if r.get("val/loss") else "train") for r in csv.DictReader(handle)]


LOGGED = (*(o for o in BASE if not o.startswith(("logger=", "trainer.val_check_interval"))), "logger=csv")


@pytest.mark.slow
def test_a_kill_during_validation_then_resume_runs_it_again_and_metrics_keep_every_step_once(
    tmp_path, cache_dir, monkeypatch, capsys
):
    marker, validations = tmp_path / "held", tmp_path / "validations.jsonl"
    hold = [
        "+callbacks.hold._target_=helpers.HoldValidation",
        "+callbacks.hold.step=6",
        f"+callbacks.hold.marker={marker}",
    ]
    record = ["+callbacks.rec._target_=helpers.RecordValidations", f"+callbacks.rec.path={validations}"]
    settings = ("trainer.max_steps=12", "trainer.val_check_interval=6", "trainer.log_every_n_steps=1", *hold, *record)
    run = Run(tmp_path / "run", cache_dir, *settings, base=tuple(o for o in LOGGED if "max_steps" not in o))
    killed = run.start("ckpt_path=auto")
    while not marker.exists():  # the validation after step 6 has started (checkpoints at 3, 6, 9, 12)
        assert killed.poll() is None, run.log()
        time.sleep(0.05)
    _kill(killed)
    monkeypatch.setenv("LLMEXP_CACHE_DIR", str(cache_dir))
    code, err = run_command(
        train.main, ["llmexp-train", *run.args[len(_entry()) :], "ckpt_path=auto"], monkeypatch, capsys
    )
    assert code == 0, err  # the resume runs in this process: the kill was real, what it left is what is read
    finished = [json.loads(line) for line in validations.read_text().splitlines()]
    assert [(v["step"], v["pid"]) for v in finished] == [(6, os.getpid()), (12, os.getpid())]  # step 6's run again
    assert {r["pid"] for r in run.losses() if r["step"] <= 6} == {killed.pid}  # resumed from step 6's checkpoint
    rows = _metrics(run)
    assert sorted(rows) == rows and len(set(rows)) == len(rows)  # in order, nothing twice
    assert [step for step, kind in rows if kind == "train"] == list(range(12))  # every step (logged 0-based)
    assert [step for step, kind in rows if kind == "val"] == [5, 11]


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_dataloader_workers_saves_logs_the_step_and_exits_0(tmp_path, cache_dir):
    workers = ("data.num_workers=2", "trainer.log_every_n_steps=100")  # no step of this run is a logging step
    run = Run(tmp_path / "run", cache_dir, *workers, base=LOGGED, throttle=0.2)
    process = run.start()
    run.wait_for_step(process, 5)
    os.killpg(process.pid, signal.SIGTERM)  # the main process and its DataLoader workers, as SLURM or timeout do
    run.finish(process)
    log = run.log(tail=None)
    assert "Preempted by SIGTERM after step" in log and "DataLoader worker" not in log and "Traceback" not in log
    saved = read_checkpoint(run.dir / "checkpoints" / "last.ckpt")["global_step"]
    assert saved >= 5 and _metrics(run)[-1] == (saved - 1, "train")  # the step in progress is logged


def test_a_signal_before_training_says_so_in_one_line_and_exits_nonzero(tmp_path, cache_dir, monkeypatch, capsys):
    """In this process (the run signals itself once its callbacks are built): the handler, the one line and the exit
    status are those of the console script."""
    where = (f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={cache_dir}")
    argv = ["llmexp-train", *BASE, *where, "+callbacks.signal._target_=helpers.SignalWhenBuilt"]
    before = signal.getsignal(signal.SIGTERM)
    code, err = run_command(train.main, argv, monkeypatch, capsys)
    assert err.strip() == "llmexp-train: stopped by SIGTERM before training started; nothing was saved"
    assert code == 128 + signal.SIGTERM
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the handler from before is back
