"""Shared fixtures: composed configs pointed at a temporary run folder and a session-wide cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

from llmexp.config.overrides import compose_config

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
