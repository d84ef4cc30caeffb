"""Where a task's rows come from: the scored split and the few-shot split, found by the words in benchmark releases'
file names (`test.jsonl`, `ARC-Easy-Train.jsonl`, `mmlu/dev/x_dev.csv`, `gsm8k/main/test-00000-of-00001.parquet`)
under eval.data_dir, named directly (eval.files, eval.fewshot_files), or loaded from the hub."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmexp.errors import ConfigError, DataError
from llmexp.evaluation import benchmarks as b
from llmexp.evaluation.settings import EvalSettings
from llmexp.evaluation.tasks import TaskSpec

log = logging.getLogger(__name__)

SPLIT_WORDS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation"}
SPLIT_WORDS |= {"dev": "dev", "test": "test"}
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz", ".json.gz", ".csv.gz")


@dataclass
class SplitRows:
    """The rows of one split and where they came from."""

    split: str
    rows: list[dict[str, Any]]
    paths: list[Path] = field(default_factory=list)  # empty when the rows came from the hub
    source: str = ""


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def split_of(relative: str) -> str | None:
    """The split a file holds: the last split word of its path (train, validation/valid/val, dev, test), or None."""
    return next((SPLIT_WORDS[w] for w in reversed(_words(relative)) if w in SPLIT_WORDS), None)


def _task_files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.name.lower().endswith(SUFFIXES))


def split_files(spec: TaskSpec, data_dir: str | None, split: str) -> list[Path]:
    """The task's files of `split` under data_dir: for each of its names, flat files (`<name>*`) before a folder
    (`<name>/**`); a file whose path names no split holds the task's first scored split. The first file, or all of
    them for tasks kept one file per subject or per problem."""
    root = Path(data_dir).expanduser() if data_dir else None
    if root is None or not root.is_dir():
        return []
    for pattern in (p for name in spec.names for p in (f"{name}*", f"{name}/**/*")):
        found = [
            p
            for p in _task_files(root, pattern)
            if (split_of(str(p.relative_to(root))) or spec.eval_splits[0]) == split
        ]
        if found:
            return found if spec.all_files else found[:1]
    return []


def sibling_split_file(path: Path, split: str) -> Path | None:
    """The file next to `path` with the same name but another split word (`mine_test.jsonl` -> `mine_train.jsonl`,
    `arc/test.jsonl` -> `arc/train.jsonl`)."""
    stem = [w for w in _words(path.name) if w not in SPLIT_WORDS]
    siblings = _task_files(path.parent, "*") if path.parent.is_dir() else []
    return next(
        (
            p
            for p in siblings
            if split_of(p.name) == split and [w for w in _words(p.name) if w not in SPLIT_WORDS] == stem
        ),
        None,
    )


def _read(spec: TaskSpec, paths: list[Path], split: str) -> SplitRows:
    rows: list[dict[str, Any]] = []
    for path in paths:
        if spec.name == "piqa":
            rows.extend(b.piqa_with_labels(path))
        elif spec.name == "mmlu" and path.suffix == ".csv":
            rows.extend(b.mmlu_csv_rows(path))
        else:
            rows.extend(b.read_records(path))
    shown = ", ".join(map(str, paths[:3])) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")
    return SplitRows(split, rows, list(paths), shown)


def _hub(spec: TaskSpec, split: str) -> SplitRows:
    import datasets

    assert spec.hub is not None
    path, name = spec.hub
    try:
        rows = list(datasets.load_dataset(path, name, split=split))
    except Exception as err:
        raise DataError(
            f"task {spec.name!r}: cannot load {path} {split} from the hub ({type(err).__name__}: {err})"
        ) from err
    return SplitRows(split, rows, [], f"hub:{path}{'/' + name if name else ''}:{split}")


def _named_file(spec: TaskSpec, value: str, key: str, split: str) -> SplitRows:
    path = Path(value).expanduser().absolute()
    if not path.is_file():
        raise DataError(f"{key}={path}: no such file")
    return _read(spec, [path], split)


def scored_rows(spec: TaskSpec, settings: EvalSettings) -> SplitRows:
    """All rows of the split the task scores (eval.limit is applied later: the few-shot pool is the whole split)."""
    if spec.name in settings.files:
        return _named_file(spec, settings.files[spec.name], f"eval.files.{spec.name}", spec.eval_splits[0])
    if spec.source is not None:
        path = Path(spec.source).expanduser()
        if not path.is_absolute() and settings.data_dir:
            path = Path(settings.data_dir).expanduser() / path
        return _named_file(spec, str(path), f"eval.tasks: {spec.name}", spec.eval_splits[0])
    for split in spec.eval_splits:
        if paths := split_files(spec, settings.data_dir, split):
            return _read(spec, paths, split)
    if settings.use_hub and spec.hub is not None:
        return _hub(spec, spec.eval_splits[0])
    names = ", ".join(f"{n}*, {n}/<split file>" for n in spec.names)
    raise DataError(
        f"task {spec.name!r}: no {'/'.join(spec.eval_splits)} file under eval.data_dir={settings.data_dir} (looked for "
        f"{names}); set eval.files.{spec.name}=<path>" + (" or eval.use_hub=true" if spec.hub else "")
    )


def _fewshot_split_rows(spec: TaskSpec, settings: EvalSettings, scored: SplitRows, split: str) -> SplitRows | None:
    if len(scored.paths) == 1 and (spec.name in settings.files or spec.source is not None):
        sibling = sibling_split_file(scored.paths[0], split)
        return _read(spec, [sibling], split) if sibling else None
    if paths := split_files(spec, settings.data_dir, split):
        return _read(spec, paths, split)
    return _hub(spec, split) if settings.use_hub and spec.hub is not None and not scored.paths else None


def fewshot_rows(spec: TaskSpec, settings: EvalSettings, scored: SplitRows) -> tuple[SplitRows, bool]:
    """The rows demonstrations are drawn from, and whether the scored item is left out of its own draw:
    eval.fewshot_files, else eval.fewshot_split, else the task's few-shot split as lm-eval finds it (its
    fewshot_split, else train, else validation); without one, the scored split itself, each item left out (logged)."""
    if spec.name in settings.fewshot_files:
        pool = _named_file(spec, settings.fewshot_files[spec.name], f"eval.fewshot_files.{spec.name}", "fewshot")
        same = {p.resolve() for p in pool.paths} <= {p.resolve() for p in scored.paths}
        return pool, spec.exclude_self or same
    wanted = [settings.fewshot_split] if settings.fewshot_split else [spec.fewshot_split, "train", "validation"]
    for split in dict.fromkeys(s for s in wanted if s):
        if split == scored.split:
            return scored, True
        if (pool := _fewshot_split_rows(spec, settings, scored, split)) is not None:
            return pool, spec.exclude_self
    if settings.fewshot_split:
        raise DataError(f"task {spec.name!r}: no {settings.fewshot_split} file next to {scored.source or 'its data'}")
    log.warning(
        "eval: %s has no %s split; few-shot examples come from the scored split (%s), each item left out of its own",
        spec.name,
        "/".join(dict.fromkeys(s for s in wanted if s)),
        scored.source,
    )
    return scored, True


def convert(spec: TaskSpec, rows: list[dict[str, Any]]) -> list[Any]:
    """Rows -> MCExample / GenExample; a row of the wrong shape is one clear DataError."""
    if spec.convert is None:
        raise ConfigError(f"task {spec.name!r} has no examples to load (kind {spec.kind})")
    try:
        return [spec.convert(row) for row in rows]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"task {spec.name!r}: a row does not have the expected format ({type(err).__name__}: {err})"
        ) from err
