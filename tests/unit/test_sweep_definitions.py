"""The ready sweeps name real config keys: a typo would only show up once a cluster or W&B had started the jobs."""

from __future__ import annotations

from pathlib import Path

import yaml

from llmexp.config import config_dir
from llmexp.config.overrides import compose_config, validate_overrides

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


def test_wandb_sweep_runs_llmexp_train_with_valid_overrides():
    spec = yaml.safe_load((SWEEPS / "wandb_lr_batch.yaml").read_text())
    assert spec["program"] == "llmexp-train" and spec["command"][0] == "${program}"
    assert "${args_no_hyphens}" in spec["command"]  # Hydra takes key=value, not --key=value
    samples = {k: v["values"][0] if "values" in v else v["min"] for k, v in spec["parameters"].items()}
    fixed = [c for c in spec["command"] if not c.startswith("${")]
    validate_overrides(config_dir(), "train", [*fixed, *(f"{k}={v}" for k, v in samples.items())])
    assert spec["metric"] == {"name": "val/loss", "goal": "minimize"}


def test_grid_sweep_is_lr_by_batch_size(tmp_path):
    cfg = compose_config("train", ["hparams_search=grid_lr_batch"], output_dir=tmp_path)
    params = cfg.hydra.sweeper.params
    assert set(params) == {"optimizer.lr", "data.batch_size"}
    validate_overrides(config_dir(), "train", [f"{k}={v}" for k, v in params.items()])
    assert len(params["optimizer.lr"].split(",")) * len(params["data.batch_size"].split(",")) == 6
