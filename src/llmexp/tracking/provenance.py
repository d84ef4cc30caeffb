"""What produced a run: code version, installed packages, data and tokenizer identity.

Written to <run>/provenance.json and into every checkpoint, so two runs (or two checkpoints) can be compared on
everything that could explain a difference, not only their configs.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import llmexp
from llmexp.tracking.secrets import redact_text

KEY_PACKAGES = (
    "torch",
    "lightning",
    "hydra-core",
    "omegaconf",
    "tokenizers",
    "datasets",
    "torchmetrics",
    "numpy",
    "wandb",
    "transformers",
    "peft",
    "deepspeed",
    "lm_eval",
    "safetensors",
)


def git_state(path: Path) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout containing `path` (empty when it is not in one)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
        root = git("rev-parse", "--show-toplevel").strip()
    except (subprocess.SubprocessError, FileNotFoundError, OSError):
        return {}
    return {"commit": commit, "dirty": dirty, "root": root}


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def all_packages() -> dict[str, str]:
    return dict(
        sorted((d.metadata["Name"], d.version) for d in importlib.metadata.distributions() if d.metadata["Name"])
    )


def collect(data_fingerprint: str | None = None, tokenizer_sha256: str | None = None) -> dict[str, Any]:
    """Provenance of the current process. Cheap (two git calls); the full package list is only in the run folder."""
    code = git_state(Path(llmexp.__file__).resolve().parent)
    cwd = git_state(Path.cwd())
    record: dict[str, Any] = {
        "llmexp_version": llmexp.__version__,
        "git": code,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "packages": package_versions(),
        "data_fingerprint": data_fingerprint,
        "tokenizer_sha256": tokenizer_sha256,
        "command": redact_text(" ".join(sys.argv), sys.argv[1:]),
    }
    if cwd and cwd.get("root") != code.get("root"):
        record["project_git"] = cwd
    return record
