"""The default run (`llmexp-train` with no overrides) is the recipe BENCHMARKS.md records with its figure: a change to
either the config or the record alone fails here."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from omegaconf import OmegaConf

BENCHMARKS = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
HEADING = "### The default run's recipe"
ROW = re.compile(r"^\| `([\w.]+)` \| `(.*?)` \|$", re.MULTILINE)
GROUPS = ("model", "optimizer", "scheduler")  # recorded key by key, so a key added to them must be recorded too
KEYS = ("tokenizer.kind", "tokenizer.vocab_size", "data.block_size", "data.batch_size", "trainer.max_steps",
        "trainer.val_check_interval", "trainer.gradient_clip_val", "seed")  # fmt: skip


def recorded_recipe() -> dict[str, object]:
    """The `setting | value` rows of the recipe table (values in YAML)."""
    section = BENCHMARKS.read_text().split(HEADING, 1)[1].split("\n#", 1)[0]
    return {key: yaml.safe_load(value) for key, value in ROW.findall(section)}


def test_the_default_run_is_the_recipe_benchmarks_md_records(make_cfg):
    cfg = make_cfg()
    composed = {
        f"{group}.{key}": value
        for group in GROUPS
        for key, value in OmegaConf.to_container(cfg[group], resolve=True).items()
        if not key.startswith("_")
    }
    composed |= {key: OmegaConf.select(cfg, key) for key in KEYS}
    assert recorded_recipe() == composed
