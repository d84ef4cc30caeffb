"""A lazily started pool of worker processes with a progress bar, or plain in-process calls for num_workers <= 1.

Workers are spawned (not forked): a forked child would inherit the parent's `tokenizers` thread pool in an unusable
state, and spawning keeps every worker's state independent of what the parent did before. Each worker's `tokenizers`
thread pool gets its share of the cores, so N workers do not run N x cores threads. Workers die with their parent:
on Linux the kernel kills them when it goes (PR_SET_PDEATHSIG), elsewhere a thread watching the parent id ends them,
so a killed run leaves no process that goes on writing into its output folder.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm

from llmexp.errors import ConfigError

PR_SET_PDEATHSIG = 1


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """End this process when `parent` ends (or now, if it already has)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


def _start_worker(threads: int, parent: int) -> None:
    die_with_parent(parent)
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))


class Workers:
    def __init__(self, num_workers: int, progress: bool = True):
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        self.num_workers, self.progress = num_workers, progress
        self._pool: Executor | None = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self) -> Executor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            threads = max(1, (os.cpu_count() or 1) // self.num_workers)
            self._pool = ProcessPoolExecutor(
                max_workers=self.num_workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(threads, os.getpid()),
            )
        return self._pool

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], desc: str) -> list[Any]:
        """fn(job) for every job, results in job order; a progress bar counts finished jobs."""
        results: list[Any] = [None] * len(jobs)
        if not jobs:
            return results
        with tqdm(total=len(jobs), desc=desc, unit="unit", disable=not self.progress, dynamic_ncols=True) as bar:
            if self.num_workers <= 1:
                for i, job in enumerate(jobs):
                    results[i] = fn(job)
                    bar.update()
                return results
            pool = self._executor()
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        return results
