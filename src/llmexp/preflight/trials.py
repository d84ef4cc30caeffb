"""The trials of a sweep, as override lists, parsed the way Hydra's sweepers parse them.

A grid sweep (Hydra's basic sweeper) is expanded exactly: every trial it would launch. An Optuna search space has no
finite list of trials, so it is covered by its corners: every choice, both ends of every range and interval.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, OverrideType
from omegaconf import DictConfig

MAX_TRIALS = 64
_RANGE_CORNERS_FROM = 8  # an Optuna range longer than this is checked at its two ends


def _line(o: Override, value: str | None) -> str:
    if value is None:
        return o.input_line
    prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++"}.get(o.type, "")
    package = f"@{o.package}" if o.package else ""
    return f"{prefix}{o.key_or_group}{package}={value}"


def _values(o: Override, corners: bool) -> list[str | None]:
    """The values of one override to try; [None] for a fixed override (its line is used as written)."""
    if not o.is_sweep_override():
        return [None]
    value = o.value()
    if isinstance(value, IntervalSweep):
        return [str(value.start), str(value.end)]
    values = list(o.sweep_string_iterator())
    if corners and o.is_range_sweep() and len(values) > _RANGE_CORNERS_FROM:
        return [values[0], values[-1]]
    return values


def sweeper_params(hydra_cfg: DictConfig) -> list[str]:
    """`hydra.sweeper.params` (declared by hparams_search/* and sweep configs) as override lines."""
    params = hydra_cfg.get("sweeper", {}).get("params") or {}
    return [f"{key}={value}" for key, value in params.items()]


def is_optuna(hydra_cfg: DictConfig) -> bool:
    return "optuna" in str(hydra_cfg.get("sweeper", {}).get("_target_", "")).lower()


def expand_trials(overrides: Sequence[str], declared: Sequence[str] = (), corners: bool = False) -> list[list[str]]:
    """Override lists, one per trial: the declared sweep params first, the command line overriding them by key.

    Beyond MAX_TRIALS combinations, the first value of every sweep plus each other value in turn is returned.
    """
    parser = OverridesParser.create()
    by_key: dict[str, Override] = {}
    for o in parser.parse_overrides([*declared, *overrides]):
        by_key.pop(o.key_or_group, None)
        by_key[o.key_or_group] = o
    parsed = list(by_key.values())
    options = [_values(o, corners) for o in parsed]
    total = 1
    for values in options:
        total *= len(values)
    if total <= MAX_TRIALS:
        return [[_line(o, v) for o, v in zip(parsed, combo, strict=True)] for combo in itertools.product(*options)]
    base = [_line(o, v[0]) for o, v in zip(parsed, options, strict=True)]
    trials = [base]
    for index, (o, values) in enumerate(zip(parsed, options, strict=True)):
        for value in values[1:]:
            trials.append([*base[:index], _line(o, value), *base[index + 1 :]])
    return trials[:MAX_TRIALS]
