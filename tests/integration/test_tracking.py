"""Tracking end to end: W&B offline runs of a real multirun read back through wandb's own reader, evals given back to
the training run, throughput metrics, and llmexp-compare over the multirun."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmexp.tracking.metrics import read_metrics_csv
from llmexp.tracking.runs import discover_runs
from llmexp.training.run import train
from wandb_records import WandbRun, read_wandb_run

FAKE_KEY = "sk-llmexp-FAKE-0123456789abcdef"
TAGS = ["experiment:smoke", "model:gpt_tiny", "data:pydocs", "task:causal_lm", "strategy:single"]


def _env(cwd: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LLMEXP_CACHE_DIR": str(cwd / "cache"),
        "WANDB_API_KEY": "",
        "HF_TOKEN": FAKE_KEY,
        "WANDB_SILENT": "true",
    }


def _cli(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, env=_env(cwd), cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two runs of a multirun logged to W&B offline, in a folder laid out as Hydra's default (<date>/<time>)."""
    cwd = tmp_path_factory.mktemp("wandb")
    folder = cwd / "outputs" / "multirun" / "2026-01-02" / "10-11-12"
    result = _cli(
        cwd,
        "llmexp.cli.train",
        "-m",
        "experiment=smoke",
        "callbacks.samples.max_new_tokens=4",
        "logger=wandb",
        f"+extra.api_key={FAKE_KEY}",
        "optimizer.lr=1e-3,3e-3",
        f"hydra.sweep.dir={folder}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def evaluated(sweep: Path) -> subprocess.CompletedProcess:
    """llmexp-eval of the first run's checkpoint, writing into its own folder."""
    ckpt = sweep / "0" / "checkpoints" / "last.ckpt"
    args = ["eval=suite", "eval.tasks=[heldout]", "eval.perplexity_max_documents=5", "device=cpu"]
    result = _cli(sweep.parents[3], "llmexp.cli.eval", f"ckpt_path={ckpt}", *args, f"hydra.run.dir={sweep.parent}/eval")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def wandb_runs(sweep: Path) -> list[WandbRun]:
    """The two training runs as W&B itself reads them (before any eval adds to them)."""
    return [read_wandb_run(next((sweep / job / "wandb").glob("offline-run-*"))) for job in ("0", "1")]


@pytest.mark.slow
def test_wandb_runs_of_a_multirun_share_the_sweeps_group_and_say_what_they_are(wandb_runs):
    runs = wandb_runs
    assert [r.run["run_group"] for r in runs] == ["smoke-2026-01-02_10-11-12"] * 2
    assert [r.run["job_type"] for r in runs] == ["train", "train"]
    assert [r.run["tags"] for r in runs] == [TAGS, TAGS]  # what the run is, not one tag per override
    names = [r.run["display_name"] for r in runs]
    assert names[0].endswith("optimizer.lr=0.001") and names[1].endswith("optimizer.lr=0.003")
    assert not [n for n in names if "logger" in n or "hydra" in n]


@pytest.mark.slow
def test_wandb_config_is_flat_without_targets_or_paths_and_the_full_one_is_a_file(sweep, wandb_runs):
    run = wandb_runs[0]
    config = run.state["config"]
    assert config["model.n_embd"] == 32 and config["optimizer.lr"] == 0.001 and config["extra.api_key"] == "***"
    assert not [k for k in config if "_target_" in k or k.startswith(("paths.", "logger.", "hydra."))]
    assert not [v for v in config.values() if isinstance(v, str) and v.startswith("/")]
    files = [f["path"] for record in run.of_type("files") for f in record["files"]]
    assert "resolved_config.yaml" in files
    (offline,) = (sweep / "0" / "wandb").glob("offline-run-*")
    assert "_target_: llmexp.models.gpt.GPTConfig" in (offline / "files" / "resolved_config.yaml").read_text()
    leaks = [p for p in (sweep / "0").rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == []


@pytest.mark.slow
def test_wandb_summary_has_best_and_last_and_the_loss_curve_and_samples_as_media(sweep, wandb_runs):
    run = wandb_runs[0]
    summary = run.state["summary"]
    val_loss = [v for _, v in read_metrics_csv(sweep / "0" / "metrics.csv")["val/loss"]]
    assert summary["val/loss"] == pytest.approx({"min": min(val_loss), "last": val_loss[-1]})
    assert summary["model/params"] > 0
    assert summary["media/loss_curve"]["_type"] == "image-file"
    assert summary["media/samples"]["_type"] == "table-file" and summary["media/samples"]["nrows"] == 3


@pytest.mark.slow
def test_llmexp_eval_adds_its_scores_to_the_training_runs_wandb_run(sweep, evaluated):
    folders = sorted((sweep / "0" / "wandb").glob("offline-run-*"))
    assert len(folders) == 2
    training, evaluation = (read_wandb_run(f) for f in folders)
    assert evaluation.run["run_id"] == training.run["run_id"]  # W&B syncs both into the one run
    scores = json.loads((sweep.parent / "eval" / "eval_results.json").read_text())["results"]
    assert {k: v for k, v in evaluation.state["summary"].items() if k.startswith("eval/")} == pytest.approx(
        {f"eval/{k}": v for k, v in scores.items()}
    )
    assert "W&B run" in evaluated.stdout


def test_wandb_settings_have_a_short_form_and_the_long_form_still_wins(make_cfg):
    cfg = make_cfg("logger=wandb", "logger.project=llm", "logger.group=lr-sweep", "logger.tags=[a,b]")
    assert (cfg.logger.wandb.project, cfg.logger.wandb.group, list(cfg.logger.wandb.tags)) == (
        "llm",
        "lr-sweep",
        ["a", "b"],
    )
    cfg = make_cfg("logger=wandb", "logger.group=short", "logger.wandb.group=long")
    assert cfg.logger.wandb.group == "long"


def test_throughput_metrics_are_logged(make_cfg, tmp_path):
    train(
        make_cfg(
            "experiment=smoke",
            "trainer.max_steps=30",
            "callbacks.samples.max_new_tokens=4",
            "callbacks.throughput.window=5",
        )
    )
    series = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    for key in ("perf/tokens_per_sec", "perf/mfu", "perf/data_wait_frac", "perf/peak_mem_gb", "train/grad_norm"):
        assert series.get(key), key
    tokens_per_sec = [v for _, v in series["perf/tokens_per_sec"]]
    assert all(v > 0 for v in tokens_per_sec)
    assert all(0 < v < 1 for _, v in series["perf/mfu"])


def _columns(table: str) -> list[list[str]]:
    """The cells of compare.txt, cut where its line of dashes has gaps (headers and cells may hold spaces)."""
    lines = table.splitlines()
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]
    return [[line[a:b].strip() for a, b in spans] for line in [lines[0], *lines[2:]]]


@pytest.mark.slow
def test_compare_a_multirun_ranks_its_runs_and_shows_their_evals(sweep, evaluated):
    runs = discover_runs([sweep])
    assert sorted(r.name for r in runs) == ["0", "1"]
    result = subprocess.run([sys.executable, "-m", "llmexp.cli.compare", str(sweep)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    header, *body = _columns((sweep / "compare.txt").read_text())
    assert header[:3] == ["run", "optimizer.lr", "val/loss"] and "eval/heldout/ppl" in header
    assert [float(row[2]) for row in body] == sorted(float(row[2]) for row in body)  # best first
    for row in body:
        run = next(r for r in runs if r.name == row[0])
        assert float(row[2]) == pytest.approx(run.final["val/loss"], abs=1e-4)
    evaluated_row = next(row for row in body if row[0] == "0")
    ppl = json.loads((sweep.parent / "eval" / "eval_results.json").read_text())["results"]["heldout/ppl"]
    assert float(evaluated_row[header.index("eval/heldout/ppl")]) == pytest.approx(ppl, abs=1e-4)
    page = (sweep / "compare.html").read_text()
    assert page.count('<tr data-run="') == 2 and page.count('class="best"') == 1 and "<script src=" not in page


def test_compare_reports_missing_folders(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli.compare", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert result.returncode == 2 and "no such folder" in result.stderr


def test_provenance_is_recorded_and_diffed(make_cfg, tmp_path):
    import json

    import torch

    from llmexp.tokenizer import Tokenizer
    from llmexp.tracking.diff import diff_records, load_record

    for name, lr in (("a", "1e-3"), ("b", "2e-3")):
        train(make_cfg("experiment=smoke", "callbacks=minimal", f"optimizer.lr={lr}", run_dir=tmp_path / name))
    provenance = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert provenance["packages"]["torch"] == torch.__version__
    assert provenance["all_packages"]["lightning"]
    assert provenance["tokenizer_sha256"] == Tokenizer.load(tmp_path / "a" / "tokenizer.json").sha256()
    assert provenance["data_fingerprint"]
    a, b = load_record(tmp_path / "a"), load_record(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert [k for k, _, _ in diff_records(a, b)] == ["config.optimizer.lr"]
    provenance["packages"]["torch"] = "0.0.1"
    provenance["git"] = {"commit": "abc", "dirty": not provenance["git"].get("dirty", False)}
    (tmp_path / "a" / "provenance.json").write_text(json.dumps(provenance))
    keys = [k for k, _, _ in diff_records(load_record(tmp_path / "a"), load_record(tmp_path / "b"))]
    assert {"provenance.packages.torch", "provenance.git.commit", "provenance.git.dirty", "config.optimizer.lr"} <= set(
        keys
    )
