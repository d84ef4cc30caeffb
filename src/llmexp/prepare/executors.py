"""Where a prepare's jobs run: this machine's worker processes (the default), or SLURM array jobs through submitit.

Both run the same jobs (see `stages`), whose outputs do not depend on where or in which grouping they ran, so the
shards are byte-identical either way. On SLURM each stage is one array: task i of n takes jobs i, i+n, ..., skips
those already done, and writes its completion marker last. A task that ends without its marker (killed, out of
time, node lost) is resubmitted alone, up to `max_retries` times; a preempted one is requeued by submitit itself
(the task is Checkpointable); a task that raised an error stops the run with that error.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from submitit.helpers import Checkpointable

from llmexp.errors import ConfigError, DataError
from llmexp.prepare.shard_writer import atomic_write_bytes
from llmexp.prepare.stages import Job, run_job
from llmexp.prepare.workers import Workers

log = logging.getLogger(__name__)


class Executor(Protocol):
    parallelism: int

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def run(self, stage: str, jobs: Sequence[Job], markers: Path) -> None: ...


class LocalExecutor:
    """Jobs in `num_workers` worker processes of this machine (0 or 1: in this process)."""

    def __init__(self, num_workers: int = 2, progress: bool = True):
        self.workers = Workers(num_workers, progress)
        self.parallelism = max(1, num_workers)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.workers.__exit__(*exc)

    def run(self, stage: str, jobs: Sequence[Job], markers: Path) -> None:
        self.workers.map(run_job, [job for job in jobs if not job.done()], stage)


class StageTask(Checkpointable):
    """One array task: its jobs (skipping those done), then its marker. On preemption or timeout submitit requeues
    it with the same arguments (Checkpointable.checkpoint), and the jobs done before are skipped."""

    def __call__(self, jobs: list[Job], marker: str, workers: int) -> int:
        with Workers(workers, progress=False) as pool:
            pool.map(run_job, [job for job in jobs if not job.done()], "task")
        atomic_write_bytes(Path(marker), json.dumps({"jobs": len(jobs)}).encode())
        return len(jobs)


def queued_job_ids() -> set[str] | None:
    """Ids of the jobs and array tasks SLURM still holds (pending, running, requeued); None if squeue fails."""
    result = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=60)
    return set(result.stdout.split()) if result.returncode == 0 else None


class SlurmExecutor:
    """Each stage as a SLURM array of `tasks` tasks, submitted with submitit; see the module docstring."""

    def __init__(
        self,
        tasks: int = 8,
        partition: str | None = None,
        cpus_per_task: int = 1,
        mem_gb: float = 4,
        timeout_min: int = 240,
        max_retries: int = 2,
        folder: str = "outputs/prepared/slurm",
        job_name: str = "llmexp-prepare",
        poll_s: float = 1.0,
        additional_parameters: dict[str, Any] | None = None,
    ):
        if tasks < 1 or cpus_per_task < 1 or max_retries < 0:
            raise ConfigError("executor.tasks and executor.cpus_per_task must be >= 1, executor.max_retries >= 0")
        self.parallelism, self.partition, self.cpus_per_task = tasks, partition, cpus_per_task
        self.mem_gb, self.timeout_min, self.max_retries = mem_gb, timeout_min, max_retries
        self.folder, self.job_name, self.poll_s = Path(folder), job_name, poll_s
        self.additional_parameters = dict(additional_parameters or {})

    def __enter__(self) -> SlurmExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _submit(self, stage: str, groups: dict[int, list[Job]], markers: dict[int, Path]) -> dict[int, Any]:
        import submitit

        executor = submitit.SlurmExecutor(folder=self.folder / stage, max_num_timeout=3)
        params: dict[str, Any] = {"partition": self.partition} if self.partition else {}
        executor.update_parameters(
            job_name=f"{self.job_name}-{stage}",
            cpus_per_task=self.cpus_per_task,
            mem=f"{int(self.mem_gb * 1024)}M",
            time=self.timeout_min,
            array_parallelism=len(groups),
            additional_parameters=self.additional_parameters,
            **params,
        )
        workers = [self.cpus_per_task if self.cpus_per_task > 1 else 0] * len(groups)
        submitted = executor.map_array(StageTask(), list(groups.values()), [str(markers[i]) for i in groups], workers)
        log.info("%s: submitted %d task(s) as SLURM array %s", stage, len(groups), submitted[0].job_id.split("_")[0])
        return dict(zip(groups, submitted, strict=True))

    def _wait(self, submitted: dict[int, Any]) -> None:
        """Until every task has returned or left SLURM's queue (without accounting, submitit alone cannot tell)."""
        while True:
            queued = queued_job_ids()
            waiting = [
                job
                for job in submitted.values()
                if not job.paths.result_pickle.exists() and (queued is None or job.job_id in queued)
            ]
            if not waiting:
                return
            time.sleep(self.poll_s)

    def _raise_errors(self, stage: str, submitted: dict[int, Any], n: int) -> None:
        """A task that raised stops the run with its error's last line (a retry would fail the same way). Only
        tasks that returned are asked: submitit's result() would wait forever on one that SLURM killed."""
        from submitit.core.utils import FailedJobError

        for i, job in submitted.items():
            if not job.paths.result_pickle.exists():
                continue
            try:
                job.result()
            except FailedJobError as err:
                last = next((line for line in reversed(str(err).splitlines()) if line.strip()), "failed")
                raise DataError(
                    f"{stage}: SLURM task {i} of {n} failed: {last.strip()} (log: {job.paths.stderr})"
                ) from None

    def run(self, stage: str, jobs: Sequence[Job], markers: Path) -> None:
        n = min(self.parallelism, len(jobs))
        groups = {i: list(jobs[i::n]) for i in range(n)}
        marker = {i: markers / f".{stage}-task{i:05d}-of-{n:05d}.done" for i in groups}
        todo = [i for i in groups if not marker[i].exists()]
        for attempt in range(self.max_retries + 1):
            if not todo:
                return
            if attempt:
                log.warning(
                    "%s: task(s) %s of %d ended unfinished (killed, out of time or lost); resubmitting "
                    "each alone (retry %d of %d)",
                    stage,
                    todo,
                    n,
                    attempt,
                    self.max_retries,
                )
            submitted = self._submit(stage, {i: groups[i] for i in todo}, marker)
            self._wait(submitted)
            self._raise_errors(stage, submitted, n)
            todo = [i for i in todo if not marker[i].exists()]
        if todo:
            raise DataError(
                f"{stage}: SLURM task(s) {todo} of {n} did not finish in {self.max_retries + 1} tries; "
                f"see the logs in {self.folder / stage}"
            )
