"""One evaluation run from a composed config: checkpoint -> model and tokenizer -> tasks -> eval_results.json."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from llmexp.artifacts.inference import load_for_inference, pick_device
from llmexp.config.overrides import job_overrides
from llmexp.config.resume import run_folder_of
from llmexp.errors import CheckpointError
from llmexp.evaluation.samples import write_samples
from llmexp.evaluation.suite import EvalSettings, flat_scores, run_suite
from llmexp.models.spec import FAMILIES, family_of
from llmexp.tracking.eval_link import add_to_training_wandb_run
from llmexp.tracking.quiet import silence_library_noise
from llmexp.tracking.secrets import redact, scrub_hydra_files

log = logging.getLogger(__name__)


COUNTS = ("n", "documents", "tokens", "bytes")


def format_table(results: dict[str, float]) -> str:
    """`task  metric  value` lines, grouped by task, for the terminal (task names hold no `/`); counts as integers."""
    rows = [(*key.split("/", 1), value) for key, value in results.items()]
    width = max((len(task) for task, _, _ in rows), default=4)
    metric_width = max((len(metric) for _, metric, _ in rows), default=6)
    header = f"{'task':<{width}}  {'metric':<{metric_width}}  value\n{'-' * (width + metric_width + 11)}\n"
    return header + "\n".join(
        f"{task:<{width}}  {metric:<{metric_width}}  {value:.0f}"
        if metric in COUNTS
        else f"{task:<{width}}  {metric:<{metric_width}}  {value:.4f}"
        for task, metric, value in rows
    )


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate `cfg.ckpt_path` on `cfg.eval`; print a table; write <run>/eval_results.json (scores as
    `<task>/<metric>`, and per task what was scored) and <run>/samples/<task>.jsonl (one record per item); return the
    scores."""
    silence_library_noise()
    settings = EvalSettings.from_config(cfg.eval)
    model, tokenizer, _ = load_for_inference(cfg.ckpt_path, pick_device(cfg.device))
    family = family_of(model)
    if not family.causal:
        causal = ", ".join(name for name, spec in FAMILIES.items() if spec.causal)
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path}: model family {family.name!r} does not score text with next-token "
            f"log-likelihoods; llmexp-eval scores causal families ({causal})"
        )
    outcomes = run_suite(model, tokenizer, settings)
    results = flat_scores(outcomes)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    scrub_hydra_files(run_dir, job_overrides())  # as llmexp-train: secret-looking overrides never reach a file
    tasks = {}
    for name, outcome in outcomes.items():
        samples = write_samples(run_dir / "samples", name, outcome.samples)
        tasks[name] = {**outcome.info, "samples": str(samples) if samples else None}
    report = {
        "ckpt_path": str(cfg.ckpt_path),
        "eval": redact(OmegaConf.to_container(cfg.eval, resolve=True)),
        "results": results,
        "tasks": tasks,
    }
    (run_dir / "eval_results.json").write_text(json.dumps(report, indent=2))
    print(format_table(results))
    print(f"\nResults: {run_dir / 'eval_results.json'}")
    trained_in = link_to_training_run(cfg.ckpt_path, run_dir / "eval_results.json", results)
    if trained_in is not None:
        print(f"Recorded in the training run: {trained_in}")
        add_to_training_wandb_run(trained_in.parent, results)  # and in its W&B run, when it used W&B
    return results


def link_to_training_run(ckpt_path: str, report: Path, results: dict[str, float]) -> Path | None:
    """Append one line (when, which checkpoint, where the report is, the scores) to `evals.jsonl` of the run that
    trained the checkpoint, so a run folder lists every evaluation of its checkpoints. None outside a run folder."""
    run = run_folder_of(Path(ckpt_path).expanduser().resolve())
    if run is None:
        return None
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "ckpt_path": str(ckpt_path), "report": str(report.resolve())}
    with (run / "evals.jsonl").open("a") as out:
        out.write(json.dumps({**line, "results": results}) + "\n")
    return run / "evals.jsonl"
