"""Shared fixtures: composed configs pointed at a temporary run folder and a session-wide cache."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
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


class BackgroundCurve:
    """A training run started in the background whose per-step losses are read when first asked for, so a test can
    start other processes meanwhile."""

    def __init__(self, command: list[str], env: dict[str, str], losses: Path):
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.path, self._losses = losses, None

    def losses(self) -> dict[int, float]:
        from scale_helpers import read_losses

        if self._losses is None:
            _, err = self.process.communicate(timeout=600)
            assert self.process.returncode == 0, err[-3000:]
            self._losses = read_losses(self.path)
        return self._losses


@pytest.fixture(scope="session")
def one_process_curve(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[BackgroundCurve]:
    """scale_helpers.CURVE trained uninterrupted by one process on the whole batch of 8, started in the background."""
    from scale_helpers import CURVE, record_loss

    folder = tmp_path_factory.mktemp("one_process")
    overrides = [*CURVE, "strategy=single", "data.batch_size=8", "data.val_batch_size=16"]
    overrides += [*record_loss(folder / "loss.jsonl"), f"hydra.run.dir={folder / 'run'}"]
    tests = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cache_dir), "PYTHONPATH": tests}
    curve = BackgroundCurve([sys.executable, "-m", "llmexp.cli.train", *overrides], env, folder / "loss.jsonl")
    yield curve
    if curve.process.poll() is None:
        curve.process.kill()
        curve.process.wait()


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


def cluster_nodes() -> int:
    """Nodes of the SLURM cluster that answers now (0: none)."""
    if not shutil.which("sinfo"):
        return 0
    result = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=30)
    return len(set(result.stdout.split())) if result.returncode == 0 else 0


@pytest.fixture(scope="session")
def slurm_two_nodes(slurm_lock: None) -> Iterator[Path]:
    """The two-node cluster of `slurm/local_cluster.sh start --nodes 2` (node1 and node2, each in a network namespace
    of its own). A one-node cluster found running is switched to it and back at the end; one-node jobs run on it."""
    before = cluster_nodes()
    result = subprocess.run([LOCAL_CLUSTER, "start", "--nodes", "2"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.skip(f"the two-node SLURM cluster did not start: {result.stderr.strip()[-500:]}")
    yield LOCAL_CLUSTER
    restore = ["stop"] if before == 0 else ["start", "--nodes", "1"] if before == 1 else None
    if restore:
        subprocess.run([LOCAL_CLUSTER, *restore], capture_output=True, timeout=300)
