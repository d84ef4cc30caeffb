"""A local multirun leaves summary.csv/md: the job that trained is ranked with its metrics, the one that broke is
marked failed with its error, and the sweep's return value is the configured optimized metric."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from llmexp.errors import ConfigError
from llmexp.training.objective import metric_value


@pytest.mark.slow
def test_multirun_summary_marks_the_failed_job(tmp_path, cache_dir):
    sweep, damaged = tmp_path / "sweep", tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"not a checkpoint")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmexp.cli.train",
            "-m",
            "experiment=smoke",
            "callbacks=minimal",
            "trainer.max_steps=5",
            "eval.limit_batches=1",
            f"init_from=null,{damaged}",  # the second job fails reading its weights (config checks all pass)
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LLMEXP_CACHE_DIR": str(cache_dir)},
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode != 0  # Hydra's basic sweeper reports the failed job after running all of them
    with open(sweep / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    expected = [("0", "ok", "null"), ("1", "failed", str(damaged))]
    assert [(r["job"], r["status"], r["init_from"]) for r in rows] == expected
    final = json.loads((sweep / "0" / "final_metrics.json").read_text())
    assert float(rows[0]["val/loss"]) == pytest.approx(final["val/loss"], rel=1e-5) and final["step"] == 5
    assert (
        rows[1]["error"].startswith(f"CheckpointError: init_from={damaged}: ")
        and "cannot be read safely" in rows[1]["error"]
    )
    assert json.loads((sweep / "1" / "job_status.json").read_text())["status"] == "failed"


def test_the_objective_is_the_named_final_metric():
    assert metric_value({"val/loss": 4.5, "step": 10}, "val/loss") == 4.5
    with pytest.raises(ConfigError, match=r"^optimized_metric=val/acc: not among the run's final metrics \(step, "):
        metric_value({"val/loss": 4.5, "step": 10}, "val/acc")
