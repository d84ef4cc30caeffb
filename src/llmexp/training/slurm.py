"""A training process that srun started takes its process layout (nodes x tasks per node) from the SLURM job.

The layout is asked for once, where the job is submitted (`sbatch --nodes=2`, `hydra.launcher.nodes=2`,
`hydra.launcher.tasks_per_node=2`); Lightning refuses a `trainer.num_nodes`/`trainer.devices` that differs from it.
"""

from __future__ import annotations

import logging
import os

from lightning.fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

# trainer key -> the SLURM variable Lightning checks it against (SLURMEnvironment.validate_settings)
_LAYOUT = {"num_nodes": "SLURM_NNODES", "devices": "SLURM_NTASKS_PER_NODE"}


def follow_slurm_layout(cfg: DictConfig) -> None:
    """Set trainer.num_nodes and trainer.devices to the job's nodes and tasks per node, saying what changed."""
    if not SLURMEnvironment.detect() or os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return
    for key, variable in _LAYOUT.items():
        value = os.environ.get(variable, "")
        if not value.isdigit() or str(cfg.trainer.get(key)) == value:
            continue
        if int(os.environ.get("SLURM_PROCID", "0")) == 0:
            log.info("trainer.%s=%s -> %s: the SLURM job has %s=%s", key, cfg.trainer.get(key), value, variable, value)
        with open_dict(cfg):
            cfg.trainer[key] = int(value)
