"""Shared fixtures: composed configs pointed at a temporary run folder and a session-wide cache."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

from llmexp.config.overrides import compose_config

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LOCAL_CLUSTER = Path(__file__).resolve().parents[1] / "slurm" / "local_cluster.sh"
SLURM_LOCK = Path("/tmp/llmexp-slurm.lock")  # held by a test session for its cluster's whole life


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer/token cache for the whole session: tests that share settings train a tokenizer once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def make_cfg(tmp_path: Path, cache_dir: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with overrides, writing into tmp_path/run and caching into the session cache."""

    def factory(*overrides: str, config_name: str = "train", run_dir: Path | None = None) -> DictConfig:
        out = run_dir or tmp_path / "run"
        cfg = compose_config(config_name, overrides, output_dir=out)
        if "paths" in cfg:
            with open_dict(cfg):
                cfg.paths.cache_dir = str(cache_dir)
        return cfg

    return factory


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def slurm_lock() -> Iterator[None]:
    """Hold an exclusive lock on SLURM_LOCK for the rest of the session: one machine runs one SLURM cluster, so a
    second test session (another checkout's suite) waits here rather than reconfiguring or stopping it mid-job.
    Skips unless root with SLURM or apt available."""
    if os.geteuid() != 0:
        pytest.skip("starting the local SLURM cluster needs root")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and apt-get is not available")
    with open(SLURM_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def slurm_cluster(slurm_lock: None) -> Iterator[Path]:
    """The real one-node SLURM cluster of slurm/local_cluster.sh: reused when one runs, else started (installing
    slurm-wlm/munge with apt if needed) and stopped at the end."""
    running = subprocess.run([LOCAL_CLUSTER, "status"], capture_output=True).returncode == 0
    if not running:
        result = subprocess.run([LOCAL_CLUSTER, "start"], capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"the local SLURM cluster did not start: {result.stderr.strip()[-500:]}")
    yield LOCAL_CLUSTER
    if not running:
        subprocess.run([LOCAL_CLUSTER, "stop"], capture_output=True, timeout=120)
