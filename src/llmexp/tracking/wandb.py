"""The W&B logger as llmexp uses it: offline unless credentials exist; runs grouped by sweep, typed by entry point,
tagged with what they are, a clean config table, the loss curve and samples as media, later evals added to the run.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from llmexp.config.overrides import in_multirun, job_overrides
from llmexp.tracking.diff import flatten
from llmexp.tracking.secrets import secret_overrides

log = logging.getLogger(__name__)

LINK_FILE = "wandb_run.json"  # in the run folder: which W&B run holds it (for llmexp-eval)
CONFIG_FILE = "resolved_config.yaml"  # the full resolved config, among the W&B run's files
TAG_GROUPS = ("experiment", "hparams_search", "model", "data", "task", "strategy", "finetune")
BEST_OF = ("val/loss", "val/bpb", "val/ppl")  # summary: the lowest value and the last one
# Overrides that say where a run is or how it logs, not what it is: left out of run names.
_PLACE_KEYS = ("hydra.", "hydra/", "paths.", "ckpt_path", "sweep.", "logger=", "logger.")
_NOT_CONFIG = ("hydra", "paths", "logger")  # where the run wrote and how it logged: not what it is


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def describing_overrides(overrides: list[str]) -> list[str]:
    """The overrides that describe the run (no paths, sweep bookkeeping or secrets)."""
    secrets = set(secret_overrides(overrides))
    return [o for o in overrides if o not in secrets and not o.lstrip("+~").startswith(_PLACE_KEYS)]


def run_name_from_overrides(overrides: list[str], max_len: int = 120) -> str | None:
    """`model=gpt_tiny optimizer.lr=1e-3` -> `model=gpt_tiny,optimizer.lr=1e-3` (paths and secrets left out)."""
    name = ",".join(re.sub(r"\s+", "", o) for o in describing_overrides(overrides))
    return name[:max_len] or None


def _choices() -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def sweep_group() -> str | None:
    """In a multirun: `<experiment>-<hparams_search>-<date>_<time>` from the sweep folder, shared by every trial (and
    by resumed sessions, which continue in the same folder); a folder named without a date is the sweep's name."""
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return None
    folder = Path(str(HydraConfig.get().sweep.dir))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.parent.name):  # Hydra's default outputs/multirun/<date>/<time>
        stamp = f"{folder.parent.name}_{folder.name}"
    elif re.search(r"\d{4}-\d{2}-\d{2}", folder.name):
        stamp = folder.name
    else:
        return folder.name
    choices = _choices()
    name = "-".join(str(choices[g]) for g in ("experiment", "hparams_search") if choices.get(g)) or "multirun"
    return f"{name}-{stamp}"


def run_tags() -> list[str]:
    """`group:option` for the config groups that say what a run is (experiment, model, data, task, strategy, ...)."""
    choices = _choices()
    return [f"{g}:{choices[g]}" for g in TAG_GROUPS if choices.get(g) not in (None, "none")]


def entry_job_type() -> str:
    """train, sft, eval, prepare, ...: the entry point (its primary config), SFT told apart by its task."""
    from hydra.core.hydra_config import HydraConfig

    entry = str(HydraConfig.get().job.config_name) if HydraConfig.initialized() else "train"
    if entry == "train" and _choices().get("task") == "sft":
        return "sft"
    return {"evaluate": "eval"}.get(entry, entry)


def clean_config(params: dict[str, Any]) -> dict[str, Any]:
    """`a.b.c` keys for W&B's runs table: no Hydra `_target_`/`_partial_`, no paths, no logger settings."""
    flat = flatten(params)
    return {
        k: v
        for k, v in flat.items()
        if k.split(".")[0] not in _NOT_CONFIG
        and not any(part.startswith("_") for part in k.split("."))
        and not (isinstance(v, str) and os.path.isabs(v))
    }


class RunLogger(WandbLogger):
    """WandbLogger that logs a clean config (the full one as a file), best-of summaries, and at the end of training
    the run folder's loss curve and samples as media; it leaves <run>/wandb_run.json so evals can find the run."""

    def __init__(self, *args: Any, media: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._media = dict(media or {})
        self._media_logged = False

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        params = dict(params)
        run = self.experiment
        for metric in BEST_OF:
            run.define_metric(metric, step_metric="trainer/global_step", summary="min,last")
        numbers = {k: v for k, v in params.items() if "/" in k and isinstance(v, int | float)}  # model/params, ...
        run.config.update(clean_config({k: v for k, v in params.items() if k not in numbers}), allow_val_change=True)
        run.summary.update(numbers)
        full = Path(run.dir) / CONFIG_FILE
        full.write_text(yaml.safe_dump({k: v for k, v in params.items() if k not in numbers}, sort_keys=False))
        run.save(str(full), base_path=run.dir, policy="now")
        link = {"id": run.id, "project": run.project, "entity": run.entity or None, "offline": run.offline}
        (Path(self.save_dir) / LINK_FILE).write_text(json.dumps(link))

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status == "success" and not self._media_logged and self._experiment is not None:
            self._log_media()

    def _log_media(self) -> None:
        """The loss-curve PNG as an image, samples.txt as a table (one row per prompt), once the run wrote them."""
        import wandb

        folder = Path(self.save_dir)
        curve, samples = folder / self._media.get("loss_curve", ""), folder / self._media.get("samples", "")
        media: dict[str, Any] = {}
        if curve.is_file():
            media["media/loss_curve"] = wandb.Image(str(curve))
        if samples.is_file():
            # samples.txt: the samples callback's separator, a line of 60 dashes, between samples
            texts = re.split(r"\n-{60}\n", samples.read_text(encoding="utf-8").strip())
            media["media/samples"] = wandb.Table(columns=["sample"], data=[[t] for t in texts])
        if media:
            self.experiment.log(media)
            self._media_logged = True


def wandb_logger(
    project: str = "llmexp",
    entity: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    job_type: str | None = None,
    save_dir: str = ".",
    offline: bool | None = None,
    log_model: bool = False,
    media: dict[str, str] | None = None,
) -> RunLogger:
    """RunLogger with llmexp's defaults. group=None: in a sweep, named after it; job_type=None: from the entry
    point; tags: yours plus the config groups chosen. offline=None: offline exactly when no credentials are
    configured, so a run never blocks on a login prompt; upload later with `wandb sync <run>/wandb/offline-run-*`."""
    if offline is None:
        offline = os.environ.get("WANDB_MODE") == "offline" or not has_wandb_credentials()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    settings = None
    if secret_overrides(sys.argv[1:]):
        # W&B records the command line in its run metadata; a secret given there must not reach its files.
        import wandb

        settings = wandb.Settings(x_disable_meta=True)
        log.warning("secret-looking overrides on the command line: W&B run metadata (command line) is not recorded")
    return RunLogger(
        project=project,
        entity=entity,
        group=group or sweep_group(),
        job_type=job_type or entry_job_type(),
        tags=list(dict.fromkeys([*(tags or []), *run_tags()])),
        name=name or run_name_from_overrides(job_overrides()),
        save_dir=save_dir,
        offline=offline,
        log_model=log_model,
        settings=settings,
        media=media,
    )
