"""conf/prepare.yaml: every option of its own groups composes and instantiates; mistakes get one clear line."""

import pytest
from hydra.utils import instantiate

from llmexp.config import config_dir
from llmexp.config.overrides import validate_overrides
from llmexp.errors import ConfigError

CONF = config_dir()
GROUPS = ("source", "clean", "pii", "dedup", "decontam", "pack", "executor")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]
REQUIRED = {
    ("source", "files"): ["source.paths=[README.md]"],
    ("source", "hf"): ["source.name=json"],
    ("source", "mixture"): ["source.components.files.paths=[README.md]"],
}


def overrides_for(group: str, option: str) -> list[str]:
    """The option plus what it requires (the default source, files, needs paths)."""
    needed = REQUIRED.get((group, option), []) if group == "source" else REQUIRED[("source", "files")]
    return ["name=x", f"{group}={option}", *needed]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_instantiates(make_cfg, group, option):
    overrides = overrides_for(group, option)
    validate_overrides(CONF, "prepare", overrides)
    cfg = make_cfg(*overrides, config_name="prepare")
    assert instantiate(cfg[group]) is not None


def test_the_issue_command_line_is_accepted():
    command = [
        "name=my_corpus",
        "source.paths=[/data/raw/**/*.jsonl]",
        "clean.min_words=50",
        "dedup.near.threshold=0.8",
    ]
    validate_overrides(CONF, "prepare", command)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["source.paths=[x]"], "name: required, but not given"),
        (["name=x"], "source.paths: required, but not given"),
        (["name=x", "source.paths=[x]", "dedup.near.treshold=0.5"], "did you mean 'threshold'?"),
        (
            ["name=x", "source.paths=[x]", "clean=strict"],
            "no such option in group 'clean'; choose one of: default, none",
        ),
    ],
)
def test_bad_overrides_name_the_key(overrides, expected):
    with pytest.raises(ConfigError) as info:
        validate_overrides(CONF, "prepare", overrides)
    assert expected in str(info.value)
