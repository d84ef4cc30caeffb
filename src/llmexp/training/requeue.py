"""SLURM requeue checkpoints (Lightning's `hpc_ckpt_<n>.ckpt`) live only as long as the job needs them."""

from __future__ import annotations

from pathlib import Path

import lightning as L


def forget_requeue_checkpoints(trainer: L.Trainer) -> None:
    """After fit has finished (not interrupted by SIGTERM), delete the run's hpc_ckpt files.

    Under SLURM, Lightning loads the newest one for every later `validate`/`test` called without `ckpt_path`, so a
    requeued job's final validation would otherwise score the weights of the preemption point, not the trained ones.
    """
    if trainer.received_sigterm:
        return
    if trainer.is_global_zero:
        for path in Path(trainer.default_root_dir).glob("hpc_ckpt_*.ckpt"):
            path.unlink()
    trainer.strategy.barrier("forget_requeue_checkpoints")
