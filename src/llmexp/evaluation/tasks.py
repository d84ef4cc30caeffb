"""The task registry: a name -> its kind, its row converter, where its file is found locally, and where on the
Hugging Face hub it lives (used through `datasets` when no local file exists)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmexp.errors import ConfigError, DataError
from llmexp.evaluation import benchmarks as b

KINDS = ("multiple_choice", "generation", "code", "perplexity", "harness")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str
    convert: Callable[[dict[str, Any]], Any] | None
    # Glob patterns tried in order under eval.data_dir (the first match wins).
    patterns: tuple[str, ...] = ()
    # (path, name, split) for datasets.load_dataset when no local file is found.
    hub: tuple[str, str | None, str] | None = None


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "hellaswag", "multiple_choice", b.hellaswag, ("hellaswag*.jsonl",), ("Rowan/hellaswag", None, "validation")
        ),
        TaskSpec(
            "arc_easy",
            "multiple_choice",
            b.arc,
            ("arc_easy*.jsonl", "ARC-Easy*.jsonl"),
            ("allenai/ai2_arc", "ARC-Easy", "test"),
        ),
        TaskSpec(
            "arc_challenge",
            "multiple_choice",
            b.arc,
            ("arc_challenge*.jsonl", "ARC-Challenge*.jsonl"),
            ("allenai/ai2_arc", "ARC-Challenge", "test"),
        ),
        TaskSpec(
            "piqa", "multiple_choice", b.piqa, ("piqa.jsonl", "piqa/valid.jsonl"), ("ybisk/piqa", None, "validation")
        ),
        TaskSpec(
            "mmlu",
            "multiple_choice",
            b.mmlu,
            ("mmlu*.jsonl", "mmlu/*_test.csv", "mmlu/test/*.csv"),
            ("cais/mmlu", "all", "test"),
        ),
        TaskSpec(
            "truthfulqa_mc1",
            "multiple_choice",
            b.truthfulqa_mc1,
            ("truthfulqa_mc1*.jsonl", "truthfulqa*.csv"),
            ("truthfulqa/truthful_qa", "multiple_choice", "validation"),
        ),
        TaskSpec("gsm8k", "generation", b.gsm8k, ("gsm8k*.jsonl",), ("openai/gsm8k", "main", "test")),
        TaskSpec(
            "humaneval",
            "code",
            b.humaneval,
            ("humaneval*.jsonl", "humaneval*.jsonl.gz", "HumanEval*.jsonl*"),
            ("openai/openai_humaneval", None, "test"),
        ),
        # Held-out text of the embedded corpus (or eval.perplexity.files): perplexity and bits per byte.
        TaskSpec("heldout", "perplexity", None),
    )
}


def get_task(name: str) -> TaskSpec:
    """A registered task, a user task `mc:<file>` / `gen:<file>` with rows already in our shape, or
    `lm_eval:<task>`, a task of lm-evaluation-harness run through our lm-eval model class."""
    if name in TASKS:
        return TASKS[name]
    kind, _, path = name.partition(":")
    if kind == "lm_eval" and path:  # any lm-evaluation-harness task, run by lm-eval itself on our model
        return TaskSpec(name, "harness", None)
    if kind in ("mc", "gen") and path:
        convert = b.generic_mc if kind == "mc" else b.generic_generation
        return TaskSpec(name, "multiple_choice" if kind == "mc" else "generation", convert, (path,))
    raise ConfigError(
        f"eval.tasks: unknown task {name!r}; known: {sorted(TASKS)}, mc:<file>, gen:<file> or lm_eval:<task name>"
    )


def find_local_files(spec: TaskSpec, data_dir: str | None, files: dict[str, str]) -> list[Path]:
    """eval.files.<task> if set, else the matches of the first of the task's patterns that matches under
    eval.data_dir: the first file, or all of them for tasks kept one file per subject (MMLU's release)."""
    if spec.name in files:
        path = Path(files[spec.name]).expanduser()
        if not path.is_file():
            raise DataError(f"eval.files.{spec.name}={path}: no such file")
        return [path]
    if spec.name.partition(":")[0] in ("mc", "gen"):
        path = Path(spec.patterns[0]).expanduser()
        if not path.is_absolute() and data_dir:
            path = Path(data_dir).expanduser() / path
        return [path] if path.is_file() else []
    if not data_dir or not Path(data_dir).expanduser().is_dir():
        return []
    root = Path(data_dir).expanduser()
    for pattern in spec.patterns:
        matches = sorted(p for p in root.glob(pattern) if p.is_file() and not p.name.endswith(".lst"))
        if matches:
            return matches if spec.name == "mmlu" else matches[:1]
    return []


def _read_task_file(spec: TaskSpec, path: Path) -> list[dict[str, Any]]:
    if spec.name == "piqa":
        return list(b.piqa_with_labels(path))
    return b.mmlu_csv_rows(path) if spec.name == "mmlu" and path.suffix == ".csv" else b.read_records(path)


def load_rows(spec: TaskSpec, data_dir: str | None, files: dict[str, str], use_hub: bool) -> list[dict[str, Any]]:
    paths = find_local_files(spec, data_dir, files)
    if paths:
        return [row for path in paths for row in _read_task_file(spec, path)]
    if not use_hub or spec.hub is None:
        raise DataError(
            f"task {spec.name!r}: no local file under eval.data_dir={data_dir} (looked for {list(spec.patterns)}); "
            f"set eval.files.{spec.name}=<path>" + (" or eval.use_hub=true" if spec.hub else "")
        )
    import datasets

    hub_path, hub_name, split = spec.hub
    try:
        return list(datasets.load_dataset(hub_path, hub_name, split=split))
    except Exception as err:
        raise DataError(
            f"task {spec.name!r}: cannot load {hub_path} from the hub ({type(err).__name__}: {err})"
        ) from err


def load_examples(
    spec: TaskSpec, data_dir: str | None, files: dict[str, str], limit: int | None = None, use_hub: bool = False
) -> list[Any]:
    """The task's first `limit` examples (all when None), converted to MCExample / GenExample."""
    if spec.convert is None:
        raise ConfigError(f"task {spec.name!r} has no examples to load (kind {spec.kind})")
    rows = load_rows(spec, data_dir, files, use_hub)
    rows = rows[:limit] if limit else rows
    try:
        return [spec.convert(row) for row in rows]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"task {spec.name!r}: a row does not have the expected format ({type(err).__name__}: {err})"
        ) from err
