"""The value a sweep optimises: one final metric of a training run (Hydra's Optuna sweeper needs a float back)."""

from __future__ import annotations

from omegaconf import DictConfig

from llmexp.errors import ConfigError
from llmexp.training.run import train


def metric_value(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name}: not among the run's final metrics ({', '.join(sorted(metrics))})")
    return float(metrics[name])


def train_objective(cfg: DictConfig) -> float:
    """Train as configured (final metrics in <run>/final_metrics.json) and return `cfg.optimized_metric`."""
    return metric_value(train(cfg), cfg.optimized_metric)
