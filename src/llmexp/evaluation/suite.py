"""Run a list of evaluation tasks on one model: the code behind `llmexp-eval` and the eval-during-training callback."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from llmexp.errors import ConfigError, DataError
from llmexp.evaluation.benchmarks import read_records
from llmexp.evaluation.generation_eval import evaluate_code, evaluate_generation, last_number
from llmexp.evaluation.multiple_choice import evaluate_multiple_choice
from llmexp.evaluation.scoring import LogLikelihoodScorer, text_perplexity
from llmexp.evaluation.tasks import TaskSpec, get_task, load_examples
from llmexp.tasks.base import Task
from llmexp.tasks.full_weights import full_language_model
from llmexp.tokenizer import Tokenizer

log = logging.getLogger(__name__)

# Keys of the train-time options (eval=val / none) that experiments set and the task suite ignores.
TRAIN_TIME_KEYS = ("final_validation", "limit_batches")

# Answer extraction per generation task (others compare the whole answer).
EXTRACTORS = {"gsm8k": last_number}


@dataclass
class EvalSettings:
    """What to evaluate and how; built from an `eval` config option (conf/eval/suite.yaml documents each field)."""

    tasks: list[str]
    data_dir: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    num_fewshot: int = 0
    batch_size: int = 16
    missing: str = "error"
    use_hub: bool = False
    seed: int = 1234
    max_new_tokens: int = 64
    perplexity_files: list[str] = field(default_factory=list)
    perplexity_max_documents: int = 200
    code_samples: int = 1
    code_k: list[int] = field(default_factory=lambda: [1])
    code_temperature: float = 0.8
    code_max_new_tokens: int = 128
    code_timeout_s: float = 5.0
    code_memory_mb: int = 512
    lm_eval_include_path: str | None = None

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError("eval.tasks is empty; name at least one task")
        if self.missing not in ("error", "skip"):
            raise ConfigError(f"eval.missing={self.missing!r} is not one of ['error', 'skip']")
        if self.num_fewshot < 0 or (self.limit is not None and self.limit < 1):
            raise ConfigError(
                f"eval.num_fewshot must be >= 0 and eval.limit >= 1 or null (got {self.num_fewshot}, {self.limit})"
            )
        too_big = [k for k in self.code_k if k > self.code_samples]
        if too_big:
            raise ConfigError(
                f"eval.code_k={self.code_k} needs eval.code_samples >= {max(too_big)} (got {self.code_samples})"
            )
        for name in self.tasks:
            get_task(name)

    @classmethod
    def from_config(cls, node: DictConfig | dict[str, Any]) -> EvalSettings:
        data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        if "tasks" not in data:
            raise ConfigError(
                "this eval option has no tasks (eval=val and eval=none are the train-time options); "
                "use eval=suite, eval=multiple_choice, eval=generation or eval=code"
            )
        for key in TRAIN_TIME_KEYS:  # set by experiments for eval=val; meaningless to the task suite
            data.pop(key, None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"eval: unknown keys {unknown}; allowed: {sorted(known)}")
        return cls(**data)


def heldout_texts(settings: EvalSettings) -> list[str]:
    """eval.perplexity_files (plain text = one document; jsonl/json/csv = the `text` field of each row), else the
    validation split of the embedded pydocs corpus (the same documents training holds out)."""
    if not settings.perplexity_files:
        from llmexp.data.pydocs import PydocsCorpus

        docs = PydocsCorpus().documents("val")
        return [doc.text for _, doc in zip(range(settings.perplexity_max_documents), docs, strict=False)]
    texts: list[str] = []
    for name in settings.perplexity_files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"eval.perplexity_files: {path}: no such file")
        if path.suffix in (".txt", ".md", ".py") or path.suffix == "":
            texts.append(path.read_text(encoding="utf-8"))
        else:
            texts.extend(str(row["text"]) for row in read_records(path))
    return texts[: settings.perplexity_max_documents]


def run_lm_eval_task(name: str, model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> dict[str, float]:
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
    )
    scores = results["results"].get(name, {}) if results else {}
    return {key.split(",")[0]: float(v) for key, v in scores.items() if isinstance(v, int | float) and "," in key}


def run_task(spec: TaskSpec, model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> dict[str, float]:
    if spec.kind == "perplexity":
        return text_perplexity(model, tokenizer, heldout_texts(settings), batch_size=settings.batch_size)
    if spec.kind == "harness":
        return run_lm_eval_task(spec.name.partition(":")[2], model, tokenizer, settings)
    examples = load_examples(spec, settings.data_dir, settings.files, settings.limit, settings.use_hub)
    if spec.kind == "multiple_choice":
        scorer = LogLikelihoodScorer(model, tokenizer, settings.batch_size)
        return evaluate_multiple_choice(scorer, examples, settings.num_fewshot, seed=settings.seed)
    if spec.kind == "generation":
        return evaluate_generation(
            model,
            tokenizer,
            examples,
            settings.max_new_tokens,
            settings.num_fewshot,
            EXTRACTORS.get(spec.name),
            batch_size=settings.batch_size,
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


def run_tasks(model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> dict[str, float]:
    """Every task's metrics as `<task>/<metric>`; with missing=skip, tasks without data are logged and left out."""
    was_training = model.training
    model.eval()
    results: dict[str, float] = {}
    try:
        for name in settings.tasks:
            spec = get_task(name)
            try:
                scores = run_task(spec, model, tokenizer, settings)
            except DataError as err:
                if settings.missing == "error":
                    raise
                log.warning("eval: skipping %s: %s", name, err)
                continue
            results.update({f"{name}/{metric}": value for metric, value in scores.items()})
    finally:
        model.train(was_training)
    return results


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
