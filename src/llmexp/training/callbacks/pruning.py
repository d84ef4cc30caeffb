"""Report the validation metric of a sweep trial to its Optuna study, and stop the trial when the pruner says so.

The trial reaches the study through its storage (the sweep's journal file, or a database), so this works whichever
launcher ran the job: in-process, a local subprocess, or a SLURM node. Rank 0 talks to the study; every rank stops
together. (optuna-integration's Lightning callback needs the Trial object of the sweep's own process and raises out of
`fit`; this one loads the trial from the storage and stops the Trainer cleanly, so the run still writes its results.)
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Inactive unless `trial` is set (the sweeper sets sweep.trial, sweep.storage and sweep.study for each trial)."""

    def __init__(
        self,
        storage: str | None = None,
        study_name: str | None = None,
        trial: int | None = None,
        monitor: str = "val/loss",
        pruner: Any = None,
    ):
        self.storage, self.study_name, self.trial_number = storage, study_name, trial
        self.monitor, self.pruner = monitor, pruner
        self.pruned = False
        self._trial = None

    def _optuna_trial(self):
        if self._trial is None:
            import optuna

            from llmexp.sweeps.storage import load_study

            study = load_study(self.storage, self.study_name, pruner=self.pruner)
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.trial_number)
            self._trial = optuna.trial.Trial(study, trial_id)
        return self._trial

    def _report(self, step: int, value: float) -> bool:
        """Report on rank 0; True when the trial should stop (then it is marked pruned in the study)."""
        trial = self._optuna_trial()
        trial.report(value, step)
        if self.pruner is None or not trial.should_prune():
            return False
        from optuna.trial import TrialState

        trial.study.tell(trial, state=TrialState.PRUNED)
        log.info("trial %d pruned at step %d (%s=%.4f)", self.trial_number, step, self.monitor, value)
        return True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.trial_number is None or trainer.sanity_checking or self.pruned or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.monitor)
        prune = False
        if trainer.is_global_zero and value is not None:
            prune = self._report(trainer.global_step, float(value))
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned = True
            trainer.should_stop = True
