"""The one-line command that re-runs one trial of a sweep as a plain run (its overrides, minus sweep bookkeeping)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

# Overrides that belong to the sweep, not to the trial: where it ran, how it was searched, its study bookkeeping.
_SWEEP_ONLY = ("hydra.", "hydra/", "sweep.", "hparams_search=", "ckpt_path=")


def trial_overrides(run_dir: str | Path) -> list[str]:
    """The trial's own overrides, from the .hydra/overrides.yaml Hydra wrote in its folder."""
    overrides = yaml.safe_load((Path(run_dir) / ".hydra" / "overrides.yaml").read_text()) or []
    return [str(o) for o in overrides if not str(o).lstrip("+~").startswith(_SWEEP_ONLY)]


def rerun_command(run_dir: str | Path, program: str = "llmexp-train") -> str:
    """`llmexp-train a=1 b=2`, quoted for a POSIX shell."""
    return " ".join([program, *(shlex.quote(o) for o in trial_overrides(run_dir))])
