"""The multirun summary: overrides -> status and final metrics, best first, from what the jobs left on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from llmexp.tracking.sweep_summary import write_job_status, write_summary


def make_job(sweep: Path, num: int, overrides: list[str], metrics: dict | None, status: str | None = None) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (job / "final_metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        write_job_status(job, status, "ConfigError: data.block_size=512 exceeds model.max_seq_len=256")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_jobs_are_ranked_best_first_with_their_status_and_varying_overrides(tmp_path):
    common = "experiment=smoke"
    make_job(tmp_path, 0, [common, "optimizer.lr=1e-3"], {"val/loss": 5.5, "step": 10}, "ok")
    make_job(tmp_path, 1, [common, "optimizer.lr=3e-3"], {"val/loss": 4.25, "step": 10}, "ok")
    make_job(tmp_path, 2, [common, "optimizer.lr=1e-2"], None, "failed")
    make_job(tmp_path, 10, [common, "optimizer.lr=3e-2"], {"val/loss": 4.75, "step": 10})  # no status: from metrics

    rows = read_csv(write_summary(tmp_path, metric="val/loss", finished=True))
    assert [(r["job"], r["status"], r["optimizer.lr"], r["val/loss"]) for r in rows] == [
        ("1", "ok", "3e-3", "4.25"),
        ("10", "ok", "3e-2", "4.75"),
        ("0", "ok", "1e-3", "5.5"),
        ("2", "failed", "1e-2", ""),
    ]
    assert "experiment" not in rows[0]  # the same in every job: left out
    assert rows[-1]["error"].startswith("ConfigError: data.block_size=512")
    markdown = (tmp_path / "summary.md").read_text()
    assert "3 of 4 jobs ok; best first by val/loss (min)." in markdown
    assert markdown.index("| 1 | ok |") < markdown.index("| 0 | ok |") < markdown.index("| 2 | failed |")


def test_a_job_without_result_is_running_until_the_launcher_returns(tmp_path):
    make_job(tmp_path, 0, ["optimizer.lr=1e-3"], {"val/loss": 5.0}, "ok")
    make_job(tmp_path, 1, ["optimizer.lr=3e-3"], None)
    assert [r["status"] for r in read_csv(write_summary(tmp_path))] == ["ok", "running"]
    assert [r["status"] for r in read_csv(write_summary(tmp_path, finished=True))] == ["ok", "failed"]


def test_maximised_metric_ranks_the_largest_first(tmp_path):
    make_job(tmp_path, 0, ["a=1"], {"val/acc": 0.5}, "ok")
    make_job(tmp_path, 1, ["a=2"], {"val/acc": 0.75}, "ok")
    assert [r["job"] for r in read_csv(write_summary(tmp_path, metric="val/acc", mode="max"))] == ["1", "0"]
