"""Run a list of evaluation tasks on one model: the code behind `llmexp-eval` and the eval-during-training callback."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig
from torch import nn

from llmexp.errors import DataError
from llmexp.evaluation.answers import last_number, math_answer
from llmexp.evaluation.fewshot import Demonstrations, contexts
from llmexp.evaluation.generation_eval import evaluate_code, evaluate_generation
from llmexp.evaluation.multiple_choice import evaluate_multiple_choice
from llmexp.evaluation.perplexity import evaluate_perplexity
from llmexp.evaluation.progress import task_progress
from llmexp.evaluation.samples import TaskResult
from llmexp.evaluation.scoring import LogLikelihoodScorer
from llmexp.evaluation.settings import EvalSettings
from llmexp.evaluation.task_data import convert, fewshot_rows, scored_rows
from llmexp.evaluation.tasks import TaskSpec, get_tasks
from llmexp.tasks.base import Task
from llmexp.tasks.full_weights import full_language_model
from llmexp.tokenizer import Tokenizer

__all__ = ["EvalSettings", "run_suite", "run_tasks"]

log = logging.getLogger(__name__)

# Answer extraction per generation task (others compare the whole answer).
EXTRACTORS = {"gsm8k": last_number, "math": math_answer}


def prepare_items(spec: TaskSpec, settings: EvalSettings) -> tuple[list[Any], list[str], dict[str, Any]]:
    """The scored examples (the first eval.limit), each one's prompt with its few-shot examples, and what was used."""
    scored = scored_rows(spec, settings)
    k = settings.num_fewshot if spec.fixed_fewshot is None else spec.fixed_fewshot
    if k != settings.num_fewshot:
        log.warning("eval: %s is scored %d-shot whatever eval.num_fewshot says, as in lm-eval", spec.name, k)
    rows = scored.rows[: settings.limit] if settings.limit else scored.rows
    everything = convert(spec, scored.rows) if k else convert(spec, rows)
    examples = everything[: len(rows)]
    info: dict[str, Any] = {"source": scored.source, "split": scored.split, "available": len(scored.rows)}
    info["num_fewshot"] = k
    demonstrations = None
    if k:
        pool, exclude_self = fewshot_rows(spec, settings, scored)
        pool_examples = everything if pool is scored else convert(spec, pool.rows)
        demonstrations = Demonstrations(
            pool.rows, pool_examples, settings.seed, exclude_self, spec.first_n, spec.group_field
        )
        info.update(fewshot_source=pool.source, fewshot_split=pool.split, fewshot_excludes_item=exclude_self)
        info.update(seed=settings.seed, sampler="first_n" if spec.first_n else "random")
    return examples, contexts(examples, rows, demonstrations, k), info


def run_lm_eval_task(name: str, model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> TaskResult:
    """One lm-evaluation-harness task (its own data loading, prompts and metrics) on our model; `acc,none` -> acc."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from llmexp.evaluation.lm_eval_adapter import LLMExpLM

    results = lm_eval.simple_evaluate(
        model=LLMExpLM(model=model, tokenizer=tokenizer, batch_size=settings.batch_size),
        tasks=[name],
        task_manager=TaskManager(include_path=settings.lm_eval_include_path),
        num_fewshot=settings.num_fewshot,
        limit=settings.limit,
        bootstrap_iters=0,
        random_seed=settings.seed,
        fewshot_random_seed=settings.seed,
        log_samples=True,
    )
    scores = results["results"].get(name, {}) if results else {}
    samples = results.get("samples", {}).get(name, []) if results else []
    return TaskResult(
        {key.split(",")[0]: float(v) for key, v in scores.items() if isinstance(v, int | float) and "," in key},
        samples,
    )


def run_task(spec: TaskSpec, model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> TaskResult:
    if spec.kind == "perplexity":
        with task_progress(spec.name, "perplexity of held-out text"):
            return evaluate_perplexity(model, tokenizer, settings)
    if spec.kind == "harness":
        with task_progress(spec.name, "run by lm-evaluation-harness"):
            return run_lm_eval_task(spec.name.partition(":")[2], model, tokenizer, settings)
    examples, prompts, info = prepare_items(spec, settings)
    capped = settings.limit is not None and len(examples) >= settings.limit
    with task_progress(spec.name, f"{len(examples)} items" + (" (eval.limit)" if capped else "")):
        result = _score(spec, model, tokenizer, settings, examples, prompts)
    result.info.update(info)
    return result


def _score(spec: TaskSpec, model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings, examples, prompts):
    if spec.kind == "multiple_choice":
        scorer = LogLikelihoodScorer(model, tokenizer, settings.batch_size)
        return evaluate_multiple_choice(scorer, examples, prompts)
    if spec.kind == "generation":
        extract = EXTRACTORS.get(spec.name)
        return evaluate_generation(
            model, tokenizer, examples, prompts, settings.max_new_tokens, extract, settings.batch_size
        )
    return evaluate_code(
        model,
        tokenizer,
        examples,
        settings.code_samples,
        settings.code_k,
        settings.code_temperature,
        settings.code_max_new_tokens,
        settings.code_timeout_s,
        settings.code_memory_mb,
        seed=settings.seed,
    )


def run_suite(model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> dict[str, TaskResult]:
    """Every task's result by its readable name; with missing=skip, tasks without data are logged and left out."""
    was_training = model.training
    model.eval()
    results: dict[str, TaskResult] = {}
    specs = get_tasks(settings.tasks)
    log.info("eval: %d tasks: %s", len(specs), ", ".join(spec.name for spec in specs))
    if settings.limit is not None:
        log.warning(
            "eval: eval.limit=%d: each task scores at most its first %d items, so its results are partial "
            "(eval.limit=null scores all)",
            settings.limit,
            settings.limit,
        )
    try:
        for spec in specs:
            try:
                results[spec.name] = run_task(spec, model, tokenizer, settings)
            except DataError as err:
                if settings.missing == "error":
                    raise
                log.warning("eval: skipping %s: %s", spec.name, err)
    finally:
        model.train(was_training)
    return results


def flat_scores(results: dict[str, TaskResult]) -> dict[str, float]:
    """`<task>/<metric>` for every score (task names hold no `/`, so the key splits back at its first one)."""
    return {f"{name}/{metric}": value for name, result in results.items() for metric, value in result.scores.items()}


def run_tasks(model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> dict[str, float]:
    """Every task's metrics as `<task>/<metric>`."""
    return flat_scores(run_suite(model, tokenizer, settings))


def evaluate_after_training(trainer, task: Task, tokenizer: Tokenizer, eval_cfg: DictConfig) -> dict[str, float]:
    """`llmexp-train eval=<suite option>`: the tasks on the trained model, logged as eval/<task>/<metric>. Every rank
    calls it (a sharded model is gathered); rank 0 evaluates and returns the scores, the others return {}."""
    settings = EvalSettings.from_config(eval_cfg)
    with full_language_model(trainer, task) as model:
        if model is None:
            return {}
        scores = {f"eval/{k}": v for k, v in run_tasks(model, tokenizer, settings).items()}
    for logger in trainer.loggers:
        logger.log_metrics(scores, step=trainer.global_step)
    return scores
