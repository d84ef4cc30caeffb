"""An Optuna search space from Hydra's sweep syntax, so an Optuna sweep takes the same overrides as a grid sweep.

`choice(a,b)` -> categorical, `range(a,b[,step])` -> int or stepped float (its end excluded, as Hydra's grid sweep
and pre-flight read it), `interval(a,b)` -> float, `tag(log, interval(a,b))` -> float on a log scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from llmexp.errors import ConfigError


def distribution(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of a sweep override; None for a plain one (`key=value`)."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_interval_sweep():
        return FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    if not values:
        raise ConfigError(f"{override.input_line}: the sweep has no values")
    if override.is_choice_sweep() or value.shuffle:
        return CategoricalDistribution(values)
    if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
        return IntDistribution(values[0], values[-1], step=value.step)
    return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))


def search_space(lines: Sequence[str]) -> tuple[dict[str, BaseDistribution], dict[str, Override]]:
    """(distributions by key, plain overrides by key); a later line for the same key wins, so the command line
    overrides the sweep config's `params`."""
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, Override] = {}
    for override in OverridesParser.create().parse_overrides(list(lines)):
        key = override.key_or_group
        dist = distribution(override)
        distributions.pop(key, None)
        fixed.pop(key, None)
        if dist is None:
            fixed[key] = override
        else:
            distributions[key] = dist
    return distributions, fixed


def grid_choices(name: str, dist: BaseDistribution) -> list[Any]:
    """Every value of a discrete distribution (what the grid sampler walks through)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step:
        count = round((dist.high - dist.low) / dist.step) + 1
        return [dist.low + i * dist.step for i in range(count)]
    raise ConfigError(f"{name}: the grid sampler needs choice(...) or range(...), not a continuous interval")
