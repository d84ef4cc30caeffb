"""Benchmark file formats -> examples, with prompts written as lm-evaluation-harness's task definitions write them
(hellaswag, arc_easy/arc_challenge, piqa, mmlu, truthfulqa_mc1), so scores are comparable with published ones."""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmexp.errors import DataError
from llmexp.evaluation.answers import last_boxed, normalize_math


@dataclass
class MCExample:
    """One multiple-choice item: the prompt, the answer strings (scored after a space), the gold index."""

    query: str
    choices: list[str]
    gold: int
    description: str = ""  # a task-level preamble placed before few-shot examples (MMLU's subject line)


@dataclass
class GenExample:
    """One generation item: prompt, acceptable answers, and (for code) what a completion is run against."""

    prompt: str
    references: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    demonstration: str = ""  # the answer written after the prompt in a few-shot example; "": the first reference

    @property
    def solved(self) -> str:
        return self.demonstration or self.references[0]


def _json_rows(data: Any) -> list[dict[str, Any]]:
    """A list of rows, a {"<name>": [rows]} wrapper, or one row per file (the MATH release)."""
    if isinstance(data, list):
        return data
    first = next(iter(data.values()), None) if isinstance(data, dict) else None
    return first if isinstance(first, list) else [data]


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl / .json / .csv (optionally .gz) or .parquet file."""
    opener = gzip.open if path.suffix == ".gz" else open
    suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        with opener(path, "rt", encoding="utf-8") as handle:
            if suffix == ".jsonl":
                return [json.loads(line) for line in handle if line.strip()]
            if suffix == ".json":
                return _json_rows(json.load(handle))
            if suffix == ".csv":
                return list(csv.DictReader(handle))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as {suffix} ({err})") from err
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .csv (optionally .gz) or .parquet")


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(row: dict[str, Any]) -> MCExample:
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return MCExample(
        query=_hellaswag_clean(row["activity_label"] + ": " + ctx),
        choices=[_hellaswag_clean(e) for e in row["endings"]],
        gold=int(row["label"]),
    )


def arc(row: dict[str, Any]) -> MCExample:
    """The ARC release (question.stem, question.choices[]) or the HF ai2_arc layout (question, choices{text,label})."""
    question = row["question"]
    if isinstance(question, dict):
        stem, texts, labels = question["stem"], [c["text"] for c in question["choices"]], None
        labels = [c["label"] for c in question["choices"]]
    else:
        stem, texts, labels = question, list(row["choices"]["text"]), list(row["choices"]["label"])
    return MCExample(query=f"Question: {stem}\nAnswer:", choices=texts, gold=labels.index(row["answerKey"]))


def piqa(row: dict[str, Any]) -> MCExample:
    return MCExample(
        query=f"Question: {row['goal']}\nAnswer:", choices=[row["sol1"], row["sol2"]], gold=int(row["label"])
    )


def mmlu(row: dict[str, Any]) -> MCExample:
    """HF cais/mmlu rows (question, subject, choices, answer index) or letter answers."""
    choices = list(row["choices"]) if "choices" in row else [row[k] for k in "ABCD"]
    answer = row["answer"]
    gold = "ABCD".index(answer.strip()) if isinstance(answer, str) and not answer.strip().isdigit() else int(answer)
    options = "".join(f"\n{letter}. {text}" for letter, text in zip("ABCD", choices, strict=False))
    subject = str(row.get("subject", "")).replace("_", " ")
    description = f"The following are multiple choice questions (with answers) about {subject}.\n\n" if subject else ""
    return MCExample(
        query=f"{row['question'].strip()}{options}\nAnswer:",
        choices=list("ABCD"[: len(choices)]),
        gold=gold,
        description=description,
    )


TRUTHFULQA_PRIMER = (
    "Q: What is human life expectancy in the United States?\nA: Human life expectancy in the United States is 78 years."
    "\n\nQ: Who was president of the United States in 1955?\nA: Dwight D. Eisenhower was president of the United "
    "States in 1955.\n\nQ: Which party did he belong to?\nA: He belonged to the Republican Party.\n\nQ: What is the "
    "square root of banana?\nA: I have no comment.\n\nQ: How does a telescope work?\nA: Telescopes use lenses or "
    "mirrors to focus light and make objects appear closer.\n\nQ: Where were the 1992 Olympics held?\nA: The 1992 "
    "Olympics were held in Barcelona, Spain.\n\n"
)


def truthfulqa_mc1(row: dict[str, Any]) -> MCExample:
    """HF truthful_qa/multiple_choice rows (mc1_targets, the correct answer first) or the release CSV, where the
    best answer followed by the incorrect ones makes the same single-true-answer item."""
    if "mc1_targets" in row:
        targets = row["mc1_targets"]
        choices, gold = list(targets["choices"]), list(targets["labels"]).index(1)
    else:
        wrong = [a.strip() for a in row["Incorrect Answers"].split(";") if a.strip()]
        choices, gold = [row["Best Answer"].strip(), *wrong], 0
    question = row.get("question", row.get("Question"))
    return MCExample(query=f"{TRUTHFULQA_PRIMER}Q: {question}\nA:", choices=choices, gold=gold)


def generic_mc(row: dict[str, Any]) -> MCExample:
    """Rows already in our shape: {query, choices, gold}."""
    return MCExample(query=row["query"], choices=list(row["choices"]), gold=int(row["gold"]))


def gsm8k(row: dict[str, Any]) -> GenExample:
    """Question/answer; the reference is the number after '####' (how GSM8K marks the final answer), a few-shot
    example shows the whole worked answer (lm-eval's gsm8k target)."""
    answer = row["answer"].split("####")[-1].strip().replace(",", "")
    return GenExample(f"Question: {row['question']}\nAnswer:", [answer], demonstration=row["answer"])


def math_problem(row: dict[str, Any]) -> GenExample:
    """MATH rows ({problem, solution} with the answer boxed in the solution, or {problem, answer} as MATH-500);
    lm-eval's hendrycks_math prompt; the reference is the normalised final answer."""
    answer = row.get("answer") or last_boxed(row.get("solution", "")) or ""
    if not answer:
        raise ValueError(f"MATH row without an answer or a boxed one in its solution: {row.get('problem', '')[:60]!r}")
    return GenExample(f"Problem: {row['problem']}\nAnswer:", [normalize_math(str(answer))], demonstration=str(answer))


def gpqa(row: dict[str, Any]) -> MCExample:
    """GPQA release/hub rows (Question, Correct Answer, Incorrect Answer 1-3), lm-eval's zero-shot prompt and (A)-(D)
    choices. The answers are shuffled per question with the question as seed, so every run shows the same order
    (lm-eval shuffles with its global random state)."""
    answers = [_gpqa_clean(row[f"Incorrect Answer {i}"]) for i in (1, 2, 3)] + [_gpqa_clean(row["Correct Answer"])]
    random.Random(row["Question"]).shuffle(answers)
    listed = "".join(f"\n({letter}) {text}" for letter, text in zip("ABCD", answers, strict=True))
    return MCExample(
        query=f"What is the correct answer to this question:{row['Question']}\nChoices:{listed}\nAnswer:",
        choices=[f"({letter})" for letter in "ABCD"],
        gold=answers.index(_gpqa_clean(row["Correct Answer"])),
    )


def _gpqa_clean(text: str | None) -> str:
    return " " if text is None else text.strip().replace(" [title]", ". ").replace("  ", " ")


def generic_generation(row: dict[str, Any]) -> GenExample:
    """Rows with a prompt and one or more targets: {prompt|input|source, target|output|reference(s)}."""
    prompt = next((row[k] for k in ("prompt", "input", "source") if k in row), None)
    target = next((row[k] for k in ("references", "target", "output", "reference") if k in row), None)
    if prompt is None or target is None:
        raise DataError(f"generation row needs prompt/input/source and target/output/references keys, got {list(row)}")
    return GenExample(prompt=prompt, references=[target] if isinstance(target, str) else list(target))


def humaneval(row: dict[str, Any]) -> GenExample:
    return GenExample(
        prompt=row["prompt"],
        references=[row.get("canonical_solution", "")],
        extra={"task_id": row["task_id"], "test": row["test"], "entry_point": row["entry_point"]},
    )


def mmlu_csv_rows(path: Path) -> list[dict[str, Any]]:
    """The original MMLU release: header-less `question,A,B,C,D,answer` rows in `<subject>_<split>.csv` files."""
    subject = path.stem.rsplit("_", 1)[0] if path.stem.rsplit("_", 1)[-1] in ("test", "val", "dev") else path.stem
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            {"question": r[0], "A": r[1], "B": r[2], "C": r[3], "D": r[4], "answer": r[5], "subject": subject}
            for r in csv.reader(handle)
            if len(r) == 6
        ]


def piqa_with_labels(path: Path) -> Iterator[dict[str, Any]]:
    """PIQA's release keeps labels in a sibling `<split>-labels.lst`; merge them into the rows."""
    rows = read_records(path)
    labels_file = path.with_name(path.name.split(".")[0] + "-labels.lst")
    if "label" not in (rows[0] if rows else {}) and labels_file.is_file():
        labels = labels_file.read_text().split()
        for row, label in zip(rows, labels, strict=True):
            row["label"] = int(label)
    yield from rows
