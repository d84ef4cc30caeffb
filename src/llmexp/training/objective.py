"""The value a sweep optimises: one final metric of a training run (Hydra's Optuna sweeper needs a float back)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from llmexp.config.overrides import in_multirun
from llmexp.errors import ConfigError
from llmexp.training.callbacks.preemption import release_signals, stop_on_signals_before_training
from llmexp.training.run import train

log = logging.getLogger(__name__)


def metric_value(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name}: not among the run's final metrics ({', '.join(sorted(metrics))})")
    return float(metrics[name])


def train_objective(cfg: DictConfig) -> float | None:
    """Train as configured (final metrics in <run>/final_metrics.json) and return `cfg.optimized_metric`.

    A single run without that metric (say, trained with validation off) has nothing to return and is not an error;
    a sweep trial without it is, because the sweeper cannot rank it."""
    stop_on_signals_before_training()  # until Trainer.fit: nothing to save yet, a signal stops with one line
    try:
        metrics = train(cfg)
    finally:
        release_signals()  # train() does before fit; this is for a run that stopped before
    if cfg.optimized_metric not in metrics and not in_multirun():
        log.info("optimized_metric=%s was not computed by this run (validation off?)", cfg.optimized_metric)
        return None
    return metric_value(metrics, cfg.optimized_metric)
