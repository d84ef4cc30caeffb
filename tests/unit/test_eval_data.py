"""Where task rows come from: release file names under a task folder, the few-shot split next to the scored one,
GPQA- and MATH-style files, and readable task names."""

import csv
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmexp.errors import ConfigError, DataError
from llmexp.evaluation.settings import EvalSettings
from llmexp.evaluation.task_data import convert, fewshot_rows, scored_rows, split_of
from llmexp.evaluation.tasks import TASKS, get_task, get_tasks


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arc_row(stem: str) -> dict:
    return {"question": stem, "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "B"}


def settings(task: str, root, **kwargs) -> EvalSettings:
    return EvalSettings(tasks=[task], data_dir=str(root), **kwargs)


@pytest.mark.parametrize(
    ("path", "split"),
    [
        ("arc_easy/test.jsonl", "test"),
        ("ARC-Easy/ARC-Easy-Train.jsonl", "train"),
        ("hellaswag/validation.jsonl", "validation"),
        ("piqa/valid.jsonl", "validation"),
        ("mmlu/data/dev/anatomy_dev.csv", "dev"),
        ("gsm8k/main/test-00000-of-00001.parquet", "test"),
        ("arc_easy_test_genmc.jsonl", "test"),
        ("truthfulqa_817.csv", None),
        ("intervals/testing.jsonl", None),  # whole words only
    ],
)
def test_the_split_is_read_from_the_words_of_the_path(path, split):
    assert split_of(path) == split


def test_release_names_under_a_task_folder_are_found(tmp_path):
    write_jsonl(tmp_path / "arc_easy" / "train.jsonl", [arc_row("train q")])
    write_jsonl(tmp_path / "arc_easy" / "test.jsonl", [arc_row("test q")])
    hella = {"activity_label": "A", "ctx_a": "b.", "ctx_b": "c", "endings": ["d", "e"], "label": "1"}
    write_jsonl(tmp_path / "hellaswag" / "validation.jsonl", [hella])
    gsm = pa.Table.from_pylist([{"question": "2+2?", "answer": "4\n#### 4"}])
    (tmp_path / "gsm8k" / "main").mkdir(parents=True)
    pq.write_table(gsm, tmp_path / "gsm8k" / "main" / "test-00000-of-00001.parquet")
    got = {name: scored_rows(TASKS[name], settings(name, tmp_path)) for name in ("arc_easy", "hellaswag", "gsm8k")}
    assert got["arc_easy"].rows[0]["question"] == "test q" and got["arc_easy"].split == "test"
    assert got["hellaswag"].split == "validation" and len(got["hellaswag"].rows) == 1
    assert convert(TASKS["gsm8k"], got["gsm8k"].rows)[0].references == ["4"]


def test_a_task_without_a_test_file_scores_its_validation_file(tmp_path):
    write_jsonl(tmp_path / "ARC-Challenge" / "ARC-Challenge-Dev.jsonl", [arc_row("dev")])
    write_jsonl(tmp_path / "ARC-Challenge" / "ARC-Challenge-Validation.jsonl", [arc_row("val")])
    found = scored_rows(TASKS["arc_challenge"], settings("arc_challenge", tmp_path))
    assert found.split == "validation" and found.rows[0]["question"] == "val"


def test_fewshot_examples_come_from_the_train_split_as_lm_eval(tmp_path):
    write_jsonl(tmp_path / "arc_easy" / "train.jsonl", [arc_row("train q")])
    write_jsonl(tmp_path / "arc_easy" / "test.jsonl", [arc_row("test q")])
    write_jsonl(tmp_path / "piqa" / "train.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}])
    write_jsonl(tmp_path / "piqa" / "valid.jsonl", [{"goal": "h", "sol1": "a", "sol2": "b", "label": 1}])
    for name, excludes in (("arc_easy", False), ("piqa", True)):  # lm-eval: fewshot_split == test_split for piqa
        config = settings(name, tmp_path)
        pool, exclude_self = fewshot_rows(TASKS[name], config, scored_rows(TASKS[name], config))
        assert (pool.split, exclude_self) == ("train", excludes)


def test_without_a_fewshot_split_the_scored_split_is_used_without_the_item(tmp_path, caplog):
    write_jsonl(tmp_path / "arc_easy_test.jsonl", [arc_row("q1"), arc_row("q2")])
    config = settings("arc_easy", tmp_path)
    scored = scored_rows(TASKS["arc_easy"], config)
    with caplog.at_level(logging.WARNING):
        pool, exclude_self = fewshot_rows(TASKS["arc_easy"], config, scored)
    assert pool is scored and exclude_self
    assert "arc_easy has no train/validation split" in caplog.text


def test_eval_files_finds_its_fewshot_split_next_to_it(tmp_path):
    write_jsonl(tmp_path / "mine" / "mine_train.jsonl", [arc_row("train q")])
    scored_file = write_jsonl(tmp_path / "mine" / "mine_test.jsonl", [arc_row("test q")])
    write_jsonl(tmp_path / "mine" / "other_train.jsonl", [arc_row("not this")])
    config = EvalSettings(tasks=["arc_easy"], files={"arc_easy": str(scored_file)})
    pool, _ = fewshot_rows(TASKS["arc_easy"], config, scored_rows(TASKS["arc_easy"], config))
    assert [r["question"] for r in pool.rows] == ["train q"]


def test_fewshot_file_and_split_can_be_chosen(tmp_path):
    write_jsonl(tmp_path / "arc_easy" / "test.jsonl", [arc_row("test q")])
    write_jsonl(tmp_path / "arc_easy" / "validation.jsonl", [arc_row("val q")])
    write_jsonl(tmp_path / "arc_easy" / "train.jsonl", [arc_row("train q")])
    shots = write_jsonl(tmp_path / "shots.jsonl", [arc_row("mine")])
    for kwargs, expected in (
        ({"fewshot_split": "validation"}, "val q"),
        ({"fewshot_files": {"arc_easy": str(shots)}}, "mine"),
    ):
        config = settings("arc_easy", tmp_path, **kwargs)
        pool, _ = fewshot_rows(TASKS["arc_easy"], config, scored_rows(TASKS["arc_easy"], config))
        assert pool.rows[0]["question"] == expected
    config = settings("arc_easy", tmp_path, fewshot_split="dev")
    with pytest.raises(DataError, match="task 'arc_easy': no dev file"):
        fewshot_rows(TASKS["arc_easy"], config, scored_rows(TASKS["arc_easy"], config))


def test_gpqa_release_csv_gives_lettered_choices_in_a_stable_order(tmp_path):
    fields = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]
    with (tmp_path / "gpqa_main.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerow(dict(zip(fields, ["Which?", "right", "w1", "w2", "w3"], strict=True)))
    first = convert(TASKS["gpqa"], scored_rows(TASKS["gpqa"], settings("gpqa", tmp_path)).rows)[0]
    again = convert(TASKS["gpqa"], scored_rows(TASKS["gpqa"], settings("gpqa", tmp_path)).rows)[0]
    assert first == again and first.choices == ["(A)", "(B)", "(C)", "(D)"]
    assert first.query.startswith("What is the correct answer to this question:Which?\nChoices:\n(A) ")
    assert f"({'ABCD'[first.gold]}) right\n" in first.query


def test_math_release_one_problem_per_json_file_and_math500_jsonl(tmp_path):
    folder = tmp_path / "MATH" / "test" / "algebra"
    folder.mkdir(parents=True)
    problem = {"problem": "Half of 1?", "solution": "It is $\\boxed{\\dfrac{1}{2}}$.", "level": "Level 1"}
    (folder / "1.json").write_text(json.dumps(problem))
    (folder / "2.json").write_text(json.dumps({**problem, "problem": "Again?"}))
    examples = convert(TASKS["math"], scored_rows(TASKS["math"], settings("math", tmp_path)).rows)
    assert [e.prompt for e in examples] == ["Problem: Half of 1?\nAnswer:", "Problem: Again?\nAnswer:"]
    assert examples[0].references == ["\\frac{1}{2}"] and examples[0].solved == "\\dfrac{1}{2}"
    five_hundred = write_jsonl(tmp_path / "math500.jsonl", [{"problem": "p", "solution": "...", "answer": "3"}])
    (ex,) = convert(
        TASKS["math"], scored_rows(TASKS["math"], settings("math", tmp_path, files={"math": str(five_hundred)})).rows
    )
    assert ex.references == ["3"]


def test_file_tasks_are_named_after_their_file():
    assert get_task("mc:/data/sets/my_quiz.jsonl.gz").name == "my_quiz"
    assert get_task("gen:answers.jsonl").name == "answers"
    assert get_task("lm_eval:hellaswag").name == "lm_eval:hellaswag"
    with pytest.raises(ConfigError, match=r"'mc:a/x\.jsonl' and 'gen:b/x\.csv' are both named 'x'"):
        get_tasks(["mc:a/x.jsonl", "gen:b/x.csv"])
