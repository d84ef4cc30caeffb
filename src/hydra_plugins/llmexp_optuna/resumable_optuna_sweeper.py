"""Optuna search behind Hydra's Sweeper interface, with the study in the sweep folder: resumable, failure-tolerant,
prunable. The loop itself is llmexp.sweeps.study.run_study; this class only adapts it to Hydra.
"""

from __future__ import annotations

from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """conf/hydra/sweeper/optuna_resumable.yaml: `sampler` (an Optuna sampler; the grid sampler as a partial, which
    gets the grid from `params`), `direction` (minimize or maximize), `storage` (null: <sweep dir>/optuna.journal;
    or a journal path or database URL), `study_name` (null: the sweep folder's name), `n_trials` (all sessions
    together), `n_jobs` (launched at once), `max_failure_rate`, `params` (key -> Hydra sweep syntax)."""

    def __init__(
        self,
        sampler: Any,
        direction: str,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None = None,
    ) -> None:
        self.sampler, self.direction, self.storage, self.study_name = sampler, direction, storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate, self.params = n_trials, n_jobs, max_failure_rate, params
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from llmexp.sweeps.study import apply_resume

        apply_resume(config)
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        from llmexp.sweeps.study import run_study

        run_study(self, arguments)
