"""Mappings of user keys in the config (`eval.files.<task>=<path>`): accepted as written, while a typo'd key anywhere
else is still refused in one line."""

import pytest
from omegaconf import DictConfig

from llmexp.config import config_dir
from llmexp.config.overrides import compose_config, open_mapping_overrides, validate_overrides
from llmexp.config.schema import OPEN_MAPPINGS
from llmexp.errors import ConfigError

CONF = config_dir()


def test_a_key_under_eval_files_is_accepted_as_written(tmp_path):
    overrides = [
        "ckpt_path=x.ckpt",
        f"eval.files.arc_challenge={tmp_path}/test.jsonl",
        "eval.fewshot_files.piqa=t.jsonl",
    ]
    validate_overrides(CONF, "evaluate", overrides)
    cfg = compose_config("evaluate", overrides, output_dir=tmp_path)
    assert cfg.eval.files == {"arc_challenge": f"{tmp_path}/test.jsonl"}
    assert cfg.eval.fewshot_files == {"piqa": "t.jsonl"}


def test_the_periodic_eval_callback_files_take_task_keys_too():
    validate_overrides(CONF, "train", ["callbacks=eval", "callbacks.periodic_eval.files.piqa=p.jsonl"])


@pytest.mark.parametrize(
    ("config_name", "override", "expected"),
    [
        (
            "evaluate",
            "eval.filez.piqa=x",
            r"eval.filez.piqa: no such key; valid keys under eval: .*did you mean 'files'",
        ),
        ("evaluate", "eval.limt=3", r"eval.limt: no such key; .*did you mean 'limit'"),
        ("train", "eval=val eval.files.piqa=x", r"eval.files.piqa: no such key; valid keys under eval: final_valid"),
        ("train", "callbacks=eval callbacks.periodic_eval.filez.piqa=x", r"no such key; .*did you mean 'files'"),
    ],
)
def test_typos_next_to_an_open_mapping_are_still_refused(config_name, override, expected):
    with pytest.raises(ConfigError, match=expected):
        validate_overrides(CONF, config_name, ["ckpt_path=x.ckpt", *override.split()])


def test_only_keys_below_an_open_mapping_are_rewritten_for_hydra():
    args = ["-m", "eval.files.piqa=a,b", "+eval.files.x=y", "eval.files={}", "eval.limit=3", "--config-name=evaluate"]
    assert open_mapping_overrides(args) == ["-m", "++eval.files.piqa=a,b", *args[2:]]


@pytest.mark.parametrize("path", OPEN_MAPPINGS)
def test_every_declared_open_mapping_is_a_mapping_in_a_shipped_config(path, tmp_path):
    config_name, overrides = ("train", ["callbacks=eval"]) if path.startswith("callbacks") else ("evaluate", [])
    cfg = compose_config(config_name, ["ckpt_path=x.ckpt", *overrides], output_dir=tmp_path)
    node = cfg
    for part in path.split("."):
        node = node[part]
    assert isinstance(node, DictConfig) and len(node) == 0
