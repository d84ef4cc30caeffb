"""hydra-optuna-sweeper's search, with the study in the sweep folder: resumable, failure-tolerant, prunable.

The loop itself is llmexp.sweeps.study.run_study; this class only adapts it to Hydra's Sweeper interface.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ResumableOptunaSweeper(Sweeper):
    """Arguments as hydra-optuna-sweeper's OptunaSweeper; storage/study_name null mean <sweep dir>/optuna.db and
    the sweep folder's name."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Any | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None = None,
        search_space: DictConfig | None = None,
        custom_search_space: str | None = None,
    ) -> None:
        from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

        self.impl = OptunaSweeperImpl(
            sampler,
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            max_failure_rate,
            search_space,
            custom_search_space,
            params,
        )

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from llmexp.sweeps.study import apply_resume

        apply_resume(config)
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from llmexp.sweeps.study import run_study

        run_study(self.impl, arguments)
