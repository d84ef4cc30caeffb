"""The task registry: a name -> its kind, its row converter, where its files are found locally, which split is scored
and which one gives few-shot examples (as lm-evaluation-harness's task file says), and its Hugging Face hub dataset
(used through `datasets` when no local file exists)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmexp.errors import ConfigError
from llmexp.evaluation import benchmarks as b

KINDS = ("multiple_choice", "generation", "code", "perplexity", "harness")


@dataclass(frozen=True)
class TaskSpec:
    """One task. `name` is readable and free of `/`: it keys the results (`<name>/<metric>`) and names the per-item
    file. The few-shot fields mirror the lm-eval task file, so demonstrations are drawn as lm-eval draws them."""

    name: str
    kind: str
    convert: Callable[[dict[str, Any]], Any] | None
    # File-name prefixes and folder names under eval.data_dir (`arc_easy_test.jsonl`, `arc_easy/test.jsonl`).
    names: tuple[str, ...] = ()
    # (path, config name) for datasets.load_dataset when no local file is found.
    hub: tuple[str, str | None] | None = None
    # Splits scored, in order of preference (lm-eval: test, else validation); a file whose name says no split is one.
    eval_splits: tuple[str, ...] = ("test", "validation")
    # lm-eval's fewshot_split; None: its rule (train, else validation, else the scored split).
    fewshot_split: str | None = None
    # lm-eval draws k+1 and drops the scored item when its fewshot_split equals its test_split (both null included).
    exclude_self: bool = False
    first_n: bool = False  # lm-eval's first_n sampler: the first k, in file order (MMLU)
    group_field: str | None = None  # one draw per value of this field (MMLU: one lm-eval task per subject)
    all_files: bool = False  # every file of the split (one file per subject or per problem)
    fixed_fewshot: int | None = None  # num_fewshot is ignored (TruthfulQA's prompt has its 6 examples; code is 0-shot)
    source: str | None = None  # mc:/gen: the file as given


def _mc(name: str, convert: Callable, names: tuple[str, ...], hub: tuple, **kwargs: Any) -> TaskSpec:
    return TaskSpec(name, "multiple_choice", convert, names, hub, **kwargs)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _mc(
            "hellaswag",
            b.hellaswag,
            ("hellaswag",),
            ("Rowan/hellaswag", None),
            eval_splits=("validation",),
            exclude_self=True,
        ),
        _mc("arc_easy", b.arc, ("arc_easy", "ARC-Easy"), ("allenai/ai2_arc", "ARC-Easy")),
        _mc("arc_challenge", b.arc, ("arc_challenge", "ARC-Challenge"), ("allenai/ai2_arc", "ARC-Challenge")),
        _mc("piqa", b.piqa, ("piqa",), ("ybisk/piqa", None), eval_splits=("validation",), exclude_self=True),
        _mc(
            "mmlu",
            b.mmlu,
            ("mmlu",),
            ("cais/mmlu", "all"),
            fewshot_split="dev",
            first_n=True,
            group_field="subject",
            all_files=True,
        ),
        _mc(
            "truthfulqa_mc1",
            b.truthfulqa_mc1,
            ("truthfulqa_mc1", "truthfulqa", "TruthfulQA"),
            ("truthfulqa/truthful_qa", "multiple_choice"),
            eval_splits=("validation",),
            exclude_self=True,
            fixed_fewshot=0,
        ),
        _mc(
            "gpqa",
            b.gpqa,
            ("gpqa_main", "gpqa"),
            ("Idavidrein/gpqa", "gpqa_main"),
            eval_splits=("train",),
            exclude_self=True,
        ),
        TaskSpec("gsm8k", "generation", b.gsm8k, ("gsm8k",), ("openai/gsm8k", "main"), fewshot_split="train"),
        TaskSpec(
            "math",
            "generation",
            b.math_problem,
            ("math", "MATH", "hendrycks_math"),
            ("HuggingFaceH4/MATH-500", None),
            all_files=True,
        ),
        TaskSpec(
            "humaneval",
            "code",
            b.humaneval,
            ("humaneval", "HumanEval"),
            ("openai/openai_humaneval", None),
            fixed_fewshot=0,
        ),
        # Held-out text of the embedded corpus (or eval.perplexity_files): perplexity and bits per byte.
        TaskSpec("heldout", "perplexity", None),
    )
}


def file_task_name(path: str) -> str:
    """The readable name of an mc:/gen: task: its file's name without the extensions (`.../arc_mine.jsonl.gz` ->
    `arc_mine`)."""
    name = Path(path).name
    while Path(name).suffix in (".gz", ".jsonl", ".json", ".csv", ".parquet"):
        name = Path(name).stem
    return name


def get_task(name: str) -> TaskSpec:
    """A registered task, a user task `mc:<file>` / `gen:<file>` with rows already in our shape (named after the
    file), or `lm_eval:<task>`, a task of lm-evaluation-harness run through our lm-eval model class."""
    if name in TASKS:
        return TASKS[name]
    kind, _, rest = name.partition(":")
    if kind == "lm_eval" and rest and "/" not in rest:  # any lm-evaluation-harness task, run by lm-eval on our model
        return TaskSpec(name, "harness", None)
    if kind in ("mc", "gen") and rest:
        convert = b.generic_mc if kind == "mc" else b.generic_generation
        kind_name = "multiple_choice" if kind == "mc" else "generation"
        return TaskSpec(file_task_name(rest), kind_name, convert, exclude_self=True, source=rest)
    raise ConfigError(
        f"eval.tasks: unknown task {name!r}; known: {sorted(TASKS)}, mc:<file>, gen:<file> or lm_eval:<task name>"
    )


def get_tasks(names: list[str]) -> list[TaskSpec]:
    """The tasks of eval.tasks; two with the same name (two mc: files called `x.jsonl`) would share result keys."""
    specs = [get_task(name) for name in names]
    seen: dict[str, str] = {}
    for given, spec in zip(names, specs, strict=True):
        if spec.name in seen:
            raise ConfigError(
                f"eval.tasks: {seen[spec.name]!r} and {given!r} are both named {spec.name!r}; rename one of the files"
            )
        seen[spec.name] = given
    return specs
