"""sweeps/wandb_lr_batch.yaml run by W&B's own agent code as far as offline allows: the agent's command for one run
(its macro expansion, its process) trains with the parameters the sweep chose, in the run W&B assigned."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from wandb_records import read_wandb_run

SPEC = Path(__file__).resolve().parents[2] / "sweeps" / "wandb_lr_batch.yaml"
# Settings a test adds to the parameters the sweep controller would send, to keep the run tiny.
TINY = {"experiment": "smoke", "callbacks": "minimal", "trainer.max_steps": 4, "eval.limit_batches": 1}


@pytest.mark.slow
def test_the_wandb_agent_runs_llmexp_train_with_the_sweeps_parameters(tmp_path, cache_dir, monkeypatch):
    from wandb.wandb_agent import Agent

    spec = yaml.safe_load(SPEC.read_text())
    chosen = {"optimizer.lr": spec["parameters"]["optimizer.lr"]["min"], "data.batch_size": 8}
    for name, value in [("WANDB_SWEEP_ID", "sweep1"), ("WANDB_RUN_ID", "unset"), ("WANDB_SWEEP_PARAM_PATH", "")]:
        monkeypatch.setenv(name, value)  # the agent sets these for its run; restored afterwards
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("LLMEXP_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # llmexp-train
    monkeypatch.chdir(tmp_path)
    agent = Agent(api=None, queue=None, sweep_id="sweep1")
    agent._sweep_command = spec["command"]
    args = {k: {"value": v} for k, v in {**chosen, **TINY}.items()}
    agent._command_run({"run_id": "agentrun1", "program": spec["program"], "args": args})
    assert agent._run_processes["agentrun1"].wait(timeout=600) == 0

    (offline,) = (tmp_path / "outputs" / "runs").glob("*/*/wandb/offline-run-*")
    run = read_wandb_run(offline)
    assert run.run["run_id"] == "agentrun1"  # the run the sweep controller assigned
    assert run.state["config"]["optimizer.lr"] == chosen["optimizer.lr"]
    assert run.state["config"]["data.batch_size"] == 8
