"""The shipped config tree: every option composes and instantiates; mistakes get one clear line."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig

from llmexp.config import config_dir
from llmexp.config.overrides import validate_overrides
from llmexp.errors import ConfigError

CONF = config_dir()
PREPARE_ONLY = {
    "source",
    "clean",
    "pii",
    "dedup",
    "decontam",
    "pack",
    "executor",
}  # groups of conf/prepare.yaml (tests/unit/test_prepare_config.py)
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in {"hydra", *PREPARE_ONLY})
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]
ASSETS = Path(__file__).resolve().parents[1] / "assets"
REQUIRED = {
    ("data", "text_files"): ["data.corpus.paths=[README.md]"],
    ("data", "shards"): ["data.path=outputs/prepared/x"],
    ("tokenizer", "pretrained"): [f"tokenizer.path={ASSETS / 'tokenizer.json'}"],
    ("data", "classification"): ["data.train_file=train.jsonl"],
    ("data", "sft"): ["data.train_file=train.json"],
    ("experiment", "finetune_classification"): ["data.train_file=train.jsonl"],
    ("experiment", "sft"): ["data.train_file=train.json"],
    ("data", "preference"): ["data.train_file=pairs.json"],
    ("experiment", "dpo"): ["data.train_file=pairs.json"],
    ("experiment", "continued_pretraining"): ["data.corpus.paths=[README.md]"],
}


def test_every_group_has_an_option():
    expected = {
        "data",
        "tokenizer",
        "model",
        "optimizer",
        "scheduler",
        "strategy",
        "trainer",
        "logger",
        "callbacks",
        "eval",
        "experiment",
        "paths",
    }
    assert expected <= set(GROUPS)
    assert all((CONF / g).glob("*.yaml") for g in expected)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_instantiates(make_cfg, group, option):
    extra = REQUIRED.get((group, option), [])
    cfg = make_cfg(f"{group}={option}", *extra)
    validate_overrides(CONF, "train", [f"{group}={option}", *extra])
    # Strategies (some need GPUs): tests/unit/test_strategies.py.
    if group in ("model", "tokenizer", "optimizer", "scheduler"):
        node = cfg[group]
        built = instantiate(node, vocab_size=100) if group == "model" else instantiate(node)
        assert built is not None
    if group in ("callbacks", "logger"):
        for node in (cfg[group] or {}).values():
            if isinstance(node, DictConfig) and "_target_" in node:  # plain values are settings (logger.project)
                assert instantiate(node) is not None


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "optimizer.lrr=1e-3",
            "optimizer.lrr: no such key; valid keys under optimizer: betas, eps, foreach, fused, lr, weight_decay",
        ),
        ("optimizer.lrr=1e-3", "did you mean 'lr'?"),
        (
            "model=gpt_tny",
            "model=gpt_tny: no such option in group 'model'; choose one of: bert_base, bert_tiny, gpt2_124m",
        ),
        ("modell=gpt_tiny", "did you mean 'model'?"),
        ("trainer.max_step=10", "did you mean 'max_steps'?"),
        ("data.block_size.x=1", "data.block_size is a value, not a group of keys"),
        ("model=gpt_tiny,gpt_smal", "model=gpt_smal: no such option"),
        ("optimizer.lr=1e-3,3e-3 trainer.max_stepz=5", "trainer.max_stepz: no such key"),
        ("data=text_files", "data.corpus.paths: required, but not given"),
        ("callbacks.model_checkpoint.monitr=x", "did you mean 'monitor'?"),
        ("model.n_embd=[1", "cannot parse the override 'model.n_embd=[1'"),
    ],
)
def test_bad_overrides_name_the_key_and_the_choices(override, expected):
    with pytest.raises(ConfigError) as info:
        validate_overrides(CONF, "train", override.split())
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_good_overrides_pass():
    validate_overrides(
        CONF,
        "train",
        [
            "model=gpt_tiny",
            "optimizer.lr=1e-3",
            "trainer.max_steps=200",
            "data.block_size=128",
            "+trainer.fast_dev_run=true",
            "model=gpt_tiny,gpt_small",
            "hydra.run.dir=/tmp/x",
        ],
    )


def test_config_dir_ships_inside_the_package_and_the_top_level_conf_points_there():
    import llmexp

    assert Path(llmexp.__file__).resolve().parent / "conf" == CONF
    assert (Path(__file__).resolve().parents[2] / "conf").resolve() == CONF.resolve()
