"""Config location and validation of command-line overrides."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """The config tree shipped inside the package (llmexp/conf), or $LLMEXP_CONFIG_DIR."""
    override = os.environ.get("LLMEXP_CONFIG_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[1] / "conf"
    if not (path / "train.yaml").exists():
        raise FileNotFoundError(f"no llmexp config tree at {path}; set LLMEXP_CONFIG_DIR to the conf/ folder")
    return path
