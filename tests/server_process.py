"""`llmexp-serve` started as a real process on a free port of 127.0.0.1, for the tests that talk to it over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server_process(checkpoint: Path, log: Path, *overrides: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start the server for `checkpoint`, wait until /health answers, yield its process and base URL, stop it
    afterwards (its feedback store is feedback.db beside `log`)."""
    port = free_port()
    command = [sys.executable, "-m", "llmexp.cli.serve", f"ckpt_path={checkpoint}", f"serve.port={port}", "device=cpu"]
    store = f"serve.feedback_path={log.parent / 'feedback.db'}"  # beside the log, not in the working directory
    with log.open("w") as out:
        process = subprocess.Popen([*command, "serve.log_level=warning", store, *overrides], stdout=out, stderr=out)
    base, deadline = f"http://127.0.0.1:{port}", time.time() + 120
    try:
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.time() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield process, base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def running_server(checkpoint: Path, log: Path, *overrides: str) -> Iterator[str]:
    """The base URL of `server_process`."""
    with server_process(checkpoint, log, *overrides) as (_, base):
        yield base
