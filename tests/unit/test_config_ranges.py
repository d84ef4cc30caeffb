"""Every numeric value of every shipped config has a declared range (the shipped values are checked against them by
the tests that compose every option, tests/unit/test_config.py and test_prepare_config.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from llmexp.config import config_dir
from llmexp.config.ranges import SAMPLING, Range, allows, describe, for_path, for_target
from llmexp.errors import ConfigError
from llmexp.models.generation import SamplingConfig

ENTRY_POINTS = ("train", "generate", "evaluate", "export", "serve", "convert", "prepare", "feedback")
NOT_COMPOSED_ALONE = ("hydra", "hparams_search", "sweep")


def _numeric(value: object) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_numeric(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _undeclared(node: DictConfig, path: str = "", target: str | None = None) -> Iterator[str]:
    """Dotted paths of numeric values with no declared range (by their target's argument, or by their path)."""
    for key in node:
        if str(key).startswith("_"):
            continue
        name = f"{path}.{key}" if path else str(key)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            if not child._is_none() and not child._is_interpolation():
                yield from _undeclared(child, name, child.get("_target_"))
            continue
        try:
            value = node[key]
        except Exception:  # ${hydra:...} and ??? values: nothing to judge
            continue
        value = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        declared = for_target(target, str(key)) if target else for_path(name)
        if _numeric(value) and declared is None:
            yield f"{name} ({target or 'no target'})"


def _option_files() -> Iterator[tuple[str, DictConfig]]:
    """(path prefix, content) of every group option file that is not a diff over other configs."""
    conf = config_dir()
    for path in sorted(conf.glob("*/**/*.yaml")):
        group = path.parent.relative_to(conf).as_posix()
        if not group.startswith(NOT_COMPOSED_ALONE) and "@package" not in path.read_text():
            yield group.replace("/", "."), OmegaConf.load(path)


def test_every_numeric_value_of_every_shipped_config_has_a_declared_range():
    undeclared = set()
    for prefix, node in _option_files():
        undeclared.update(_undeclared(node, prefix, node.get("_target_")))
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        experiments = [["experiment=" + e] for e in loader.get_group_options("experiment")]
        for name, overrides in [*((n, []) for n in ENTRY_POINTS), *(("train", e) for e in experiments)]:
            undeclared.update(_undeclared(compose(name, overrides=overrides)))
    assert len(experiments) >= 8
    assert not undeclared


@pytest.mark.parametrize(
    ("declared", "inside", "outside", "text"),
    [
        (Range(1, kind=int, also=(-1,), note="no limit"), [1, 10**9, -1], [0, -5, 1.5, True, None], "or -1 (no limit)"),
        (Range(0, 1, high_open=True, length=2), [[0.9, 0.95]], [[0.9], [0.9, 1.0], 0.9], "a list of 2 numbers"),
        (Range(0, low_open=True), [1e-9, 3], [0, -1e-3, float("nan"), float("inf"), "fast"], "a number > 0"),
        ((Range(1, kind=int), Range(0, 1, low_open=True, kind=float)), [5, 0.5, 1.0], [0, 0.0, 2.0], " or a fraction"),
    ],
)
def test_a_range_allows_what_it_says(declared, inside, outside, text):
    assert all(allows(declared, v) for v in inside)
    assert not any(allows(declared, v) for v in outside)
    assert text in describe(declared)


@pytest.mark.parametrize(
    "settings", [{"temperature": -1}, {"top_p": 2.0}, {"max_new_tokens": 0}, {"repetition_penalty": 1e-300}]
)
def test_sampling_settings_are_checked_against_the_same_declared_ranges(settings):
    (key, value), declared = next(iter(settings.items())), SAMPLING[next(iter(settings))]
    with pytest.raises(ConfigError) as info:
        SamplingConfig(**settings)
    assert str(info.value) == f"{key}={value!r}: must be {describe(declared)}"
