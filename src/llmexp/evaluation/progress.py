"""Progress of the evaluation task that is running: the task announces itself and how long it took, and the loop that
does its work (scoring requests, generating answers, running programs, reading documents) moves a bar. The loops
report through this module, so none of their signatures carries a progress argument."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from tqdm import tqdm

log = logging.getLogger(__name__)
_bar: ContextVar[tqdm | None] = ContextVar("eval_progress_bar", default=None)
_task: ContextVar[str | None] = ContextVar("eval_task", default=None)


@contextmanager
def task_progress(task: str, what: str) -> Iterator[None]:
    """Log that `task` starts (`what` says what it scores) and how long it took; loops inside it move its bar."""
    log.info("eval: %s: %s", task, what)
    started, token = time.perf_counter(), _task.set(task)
    try:
        yield
    finally:
        bar = _bar.get()
        if bar is not None:
            bar.close()
            _bar.set(None)
        _task.reset(token)
        log.info("eval: %s: done in %.1f s", task, time.perf_counter() - started)


def expect(total: int, unit: str) -> None:
    """The running task's loop is about to do `total` units of work."""
    task = _task.get()
    if task is None or total <= 0:
        return
    previous = _bar.get()
    if previous is not None:
        previous.close()
    _bar.set(tqdm(total=total, desc=f"eval {task}", unit=unit, mininterval=2.0, dynamic_ncols=True))


def advance(done: int = 1) -> None:
    bar = _bar.get()
    if bar is not None:
        bar.update(done)
