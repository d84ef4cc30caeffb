"""The W&B logger as llmexp uses it: offline unless credentials exist, named after the run's overrides."""

from __future__ import annotations

import logging
import netrc
import os
import re
import sys
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger

from llmexp.config.overrides import in_multirun, job_overrides
from llmexp.tracking.secrets import secret_overrides

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


# Overrides that say where a run is, not what it is: left out of run names and tags.
_PLACE_KEYS = ("hydra.", "hydra/", "paths.", "ckpt_path", "sweep.")


def describing_overrides(overrides: list[str]) -> list[str]:
    """The overrides that describe the run (no paths, sweep bookkeeping or secrets)."""
    secrets = set(secret_overrides(overrides))
    return [o for o in overrides if o not in secrets and not o.lstrip("+~").startswith(_PLACE_KEYS)]


def sweep_group() -> str | None:
    """In a multirun: the sweep folder's name, shared by every trial of the sweep (resumed sessions included)."""
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return None
    return Path(str(HydraConfig.get().sweep.dir)).name


def run_name_from_overrides(overrides: list[str], max_len: int = 120) -> str | None:
    """`model=gpt_tiny optimizer.lr=1e-3` -> `model=gpt_tiny,optimizer.lr=1e-3` (paths and secrets left out)."""
    kept = describing_overrides(overrides)
    name = ",".join(re.sub(r"\s+", "", o) for o in kept)
    return name[:max_len] or None


def wandb_logger(
    project: str = "llmexp",
    entity: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    save_dir: str = ".",
    offline: bool | None = None,
    log_model: bool = False,
) -> WandbLogger:
    """WandbLogger with llmexp's defaults. group=None: in a sweep, the sweep's name. offline=None: offline exactly
    when no credentials are configured, so a run never blocks on a login prompt; offline runs are uploaded later with
    `wandb sync <run>/wandb/offline-run-*`."""
    if offline is None:
        offline = os.environ.get("WANDB_MODE") == "offline" or not has_wandb_credentials()
    overrides = job_overrides()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    settings = None
    if secret_overrides(sys.argv[1:]):
        # W&B records the command line in its run metadata; a secret given there must not reach its files.
        import wandb

        settings = wandb.Settings(x_disable_meta=True)
        log.warning("secret-looking overrides on the command line: W&B run metadata (command line) is not recorded")
    return WandbLogger(
        project=project,
        entity=entity,
        group=group or sweep_group(),
        tags=list(tags or []) + describing_overrides(overrides)[:20],
        name=name or run_name_from_overrides(overrides),
        save_dir=save_dir,
        offline=offline,
        log_model=log_model,
        settings=settings,
    )
