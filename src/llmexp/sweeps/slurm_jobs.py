"""Follow the SLURM jobs of a sweep: each job's state and log file, one line when it changes.

submitit polls `sacct`, which fails where SLURM keeps no accounting (a local cluster, some sites): every poll then
printed "Slurm accounting storage is disabled" and "Bypassing sacct error", and nothing about the jobs. This watcher
asks sacct once, quietly; where it cannot answer it reads `squeue` instead, and a job that has left the queue counts as
ended (its result file, or its absence, then says how).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from submitit.core.utils import JobPaths
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

log = logging.getLogger(__name__)

ENDED = "ENDED"  # left squeue; without accounting, how it ended is read from its result file
SQUEUE = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%N"]


def parse_squeue(output: str) -> dict[str, dict[str, str]]:
    """`squeue --format=%i|%T|%N` lines -> {job id: {"JobID", "State", "NodeList"}} (sacct's keys)."""
    jobs = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            jobs[parts[0]] = {"JobID": parts[0], "State": parts[1], "NodeList": parts[2]}
    return jobs


class QueueWatcher(SlurmInfoWatcher):
    """submitit's job watcher (polls at most every `delay_s`), reading squeue where sacct fails, and logging each
    job's state, nodes and log file whenever they change. `folder`: the executor's folder (with %j)."""

    def __init__(self, folder: str | Path, delay_s: int = 15) -> None:
        super().__init__(delay_s=delay_s)
        self.folder = folder
        self.accounting: bool | None = None  # None until sacct has been asked once
        self._reported: dict[str, tuple[str, str]] = {}

    def _poll(self, main_ids: list[str]) -> dict[str, dict[str, str]] | None:
        command = self._make_command()  # sacct's, for the same jobs
        if self.accounting is not False and command is not None:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            if result.returncode == 0:
                self.accounting = True
                return self.read_info(result.stdout)
            if self.accounting is None:
                log.info("SLURM accounting (sacct) does not answer here: following the jobs with squeue")
            self.accounting = False
        result = subprocess.run([*SQUEUE, f"--jobs={','.join(main_ids)}"], capture_output=True, text=True, timeout=120)
        if result.returncode != 0 and "Invalid job id" not in result.stderr:
            return None  # the controller did not answer: keep the last known states
        found = parse_squeue(result.stdout)
        return {job: found.get(job, {"JobID": job, "State": ENDED, "NodeList": ""}) for job in self._waiting()}

    def _waiting(self) -> set[str]:
        """Unfinished jobs, without the ids of job arrays (submitit registers an array and each of its tasks)."""
        waiting = self._registered - self._finished
        return {job for job in waiting if not any(other.startswith(f"{job}_") for other in self._registered)}

    def update(self) -> None:
        """One poll of all unfinished jobs (submitit calls it from Job.done while it waits)."""
        main_ids = sorted({job.split("_")[0] for job in self._waiting()})
        if not main_ids:
            return
        self._num_calls += 1
        states = self._poll(main_ids)
        if states is not None:
            self._info_dict.update(states)
            self._report(states)
        self._last_status_check = time.time()
        for job in self._waiting():
            if self.is_done(job, mode="cache"):
                self._finished.add(job)

    def report_returned(self) -> None:
        """Once the sweep has every result: a last poll, and a line for each job that returned its result while a
        poll still saw it run (its processes were exiting)."""
        self.update()
        for job in sorted(self._waiting()):
            paths = JobPaths(self.folder, job, 0)
            if paths.result_pickle.exists():
                log.info("job %s: returned its result, log %s", job, paths.stdout)

    def _report(self, states: dict[str, dict[str, str]]) -> None:
        for job in sorted(states.keys() & self._registered):
            state, nodes = states[job].get("State", "UNKNOWN"), states[job].get("NodeList", "")
            if self._reported.get(job) != (state, nodes):
                self._reported[job] = (state, nodes)
                where = f" on {nodes}" if nodes and state != "PENDING" else ""
                log.info("job %s: %s%s, log %s", job, state, where, JobPaths(self.folder, job, 0).stdout)


@contextmanager
def watching(folder: str | Path) -> Iterator[QueueWatcher]:
    """While inside, every submitit SLURM job is followed by a QueueWatcher (submitit's watcher is a class
    attribute of SlurmJob)."""
    previous, watcher = SlurmJob.watcher, QueueWatcher(folder)
    SlurmJob.watcher = watcher
    try:
        yield watcher
        watcher.report_returned()
    finally:
        SlurmJob.watcher = previous
