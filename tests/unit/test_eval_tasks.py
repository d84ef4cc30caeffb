"""Benchmark loaders (fixture files in each release format, and the real files in ../shared/data) and code execution."""

import csv
import gzip
import json

import pytest

from llmexp.errors import ConfigError, DataError
from llmexp.evaluation.code_exec import humaneval_program, run_program, score_code_samples, truncate_completion
from llmexp.evaluation.settings import EvalSettings
from llmexp.evaluation.task_data import convert, scored_rows
from llmexp.evaluation.tasks import TASKS, get_task


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def load_examples(spec, data_dir, files):
    """The scored examples of a task, found as llmexp-eval finds them."""
    settings = EvalSettings(tasks=[(spec.source and f"mc:{spec.source}") or spec.name], data_dir=data_dir, files=files)
    return convert(spec, scored_rows(spec, settings).rows)


def test_hellaswag_rows_become_lm_eval_queries(tmp_path):
    row = {
        "activity_label": "Baking cookies",
        "ctx_a": "A woman puts dough on a tray.",
        "ctx_b": "she",
        "endings": ["puts it in the oven [title] Step two.", "eats the tray."],
        "label": "0",
    }
    write_jsonl(tmp_path / "hellaswag_val.jsonl", [row])
    (ex,) = load_examples(TASKS["hellaswag"], str(tmp_path), {})
    assert ex.query == "Baking cookies: A woman puts dough on a tray. She"
    assert ex.choices == ["puts it in the oven. Step two.", "eats the tray."] and ex.gold == 0


def test_arc_release_and_hub_layouts_give_the_same_example(tmp_path):
    release = {
        "question": {"stem": "Why?", "choices": [{"text": "A1", "label": "A"}, {"text": "B1", "label": "B"}]},
        "answerKey": "B",
    }
    hub = {"question": "Why?", "choices": {"text": ["A1", "B1"], "label": ["A", "B"]}, "answerKey": "B"}
    write_jsonl(tmp_path / "arc_easy.jsonl", [release, hub])
    first, second = load_examples(TASKS["arc_easy"], str(tmp_path), {})
    assert first == second
    assert first.query == "Question: Why?\nAnswer:" and first.choices == ["A1", "B1"] and first.gold == 1


def test_piqa_labels_come_from_the_sibling_lst_file(tmp_path):
    write_jsonl(tmp_path / "piqa" / "valid.jsonl", [{"goal": "g", "sol1": "s1", "sol2": "s2"}] * 2)
    (tmp_path / "piqa" / "valid-labels.lst").write_text("1\n0\n")
    examples = load_examples(TASKS["piqa"], str(tmp_path), {})
    assert [e.gold for e in examples] == [1, 0]
    assert examples[0].query == "Question: g\nAnswer:" and examples[0].choices == ["s1", "s2"]


def test_mmlu_lists_lettered_options_and_scores_letters(tmp_path):
    row = {"question": " What is 2+2? ", "subject": "high_school_math", "choices": ["1", "2", "3", "4"], "answer": 3}
    write_jsonl(tmp_path / "mmlu_test.jsonl", [row])
    (ex,) = load_examples(TASKS["mmlu"], str(tmp_path), {})
    assert ex.query == "What is 2+2?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"
    assert ex.choices == ["A", "B", "C", "D"] and ex.gold == 3
    assert ex.description == "The following are multiple choice questions (with answers) about high school math.\n\n"


def test_mmlu_release_csv_takes_the_subject_from_the_file_name(tmp_path):
    (tmp_path / "mmlu").mkdir()
    (tmp_path / "mmlu" / "college_physics_test.csv").write_text('"Speed of light?",1,c,3,4,B\n')
    (tmp_path / "mmlu" / "anatomy_test.csv").write_text("Bones?,206,1,2,3,A\n")
    anatomy, ex = load_examples(TASKS["mmlu"], str(tmp_path), {})  # every subject file, in name order
    assert anatomy.gold == 0 and "about anatomy." in anatomy.description
    assert ex.query == "Speed of light?\nA. 1\nB. c\nC. 3\nD. 4\nAnswer:" and ex.gold == 1
    assert "about college physics." in ex.description


def test_truthfulqa_csv_puts_the_best_answer_first(tmp_path):
    path = tmp_path / "truthfulqa.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["Question", "Best Answer", "Incorrect Answers"])
        writer.writeheader()
        writer.writerow({"Question": "Is it?", "Best Answer": "Yes", "Incorrect Answers": "No; Maybe"})
    (ex,) = load_examples(TASKS["truthfulqa_mc1"], str(tmp_path), {})
    assert ex.choices == ["Yes", "No", "Maybe"] and ex.gold == 0
    assert ex.query.startswith("Q: What is human life expectancy") and ex.query.endswith("\n\nQ: Is it?\nA:")


def test_files_override_and_user_tasks(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"query": "q", "choices": ["a", "b"], "gold": 1}])
    (ex,) = load_examples(get_task(f"mc:{path}"), None, {})
    assert ex.gold == 1
    with pytest.raises(DataError, match=r"eval.files.piqa"):
        load_examples(TASKS["piqa"], str(tmp_path / "nothing"), {})
    with pytest.raises(ConfigError, match="unknown task 'hellaswog'"):
        get_task("hellaswog")


def test_gsm8k_reference_is_the_final_number(tmp_path):
    write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": "How many?", "answer": "3 + 4 = 7\n#### 1,234"}])
    (ex,) = load_examples(TASKS["gsm8k"], str(tmp_path), {})
    assert ex.prompt == "Question: How many?\nAnswer:" and ex.references == ["1234"]
    assert ex.solved == "3 + 4 = 7\n#### 1,234"  # a few-shot example shows the worked answer, as lm-eval's gsm8k


def test_shared_benchmark_files_load(shared_data):
    files = {"truthfulqa_mc1": str(shared_data / "truthfulqa_817.csv")}
    counts = {"piqa": 1838, "arc_easy": 2376, "truthfulqa_mc1": 817, "gsm8k": 1319, "humaneval": 164}
    for name, count in counts.items():
        examples = load_examples(TASKS[name], str(shared_data), files)
        assert len(examples) == count, name
        if TASKS[name].kind == "multiple_choice":
            assert all(0 <= e.gold < len(e.choices) for e in examples), name


def test_canonical_humaneval_solutions_pass_and_wrong_ones_fail(shared_data):
    with gzip.open(shared_data / "humaneval_HumanEval.jsonl.gz", "rt") as handle:
        problems = [json.loads(line) for _, line in zip(range(4), handle, strict=False)]
    samples = [[p["canonical_solution"], "    return None\n"] for p in problems]
    assert score_code_samples(problems, samples, ks=[1, 2]) == {"pass@1": 0.5, "pass@2": 1.0}


def test_program_that_loops_forever_is_stopped():
    result = run_program("while True:\n    pass\n", timeout_s=1.0)
    assert not result.passed and result.status == "timeout"


def test_program_over_the_memory_limit_fails():
    result = run_program("x = bytearray(1024 * 1024 * 1024)\n", timeout_s=5.0, memory_mb=200)
    assert not result.passed and result.status == "memory" and "MemoryError" in result.detail


def test_program_cannot_see_the_parent_environment(monkeypatch):
    monkeypatch.setenv("LLMEXP_SECRET_PROBE", "leak")
    assert run_program("import os\nassert 'LLMEXP_SECRET_PROBE' not in os.environ\n").passed


def test_completion_is_cut_where_a_new_top_level_block_starts():
    completion = "    return a + b\n\ndef unrelated():\n    pass\n"
    assert truncate_completion(completion) == "    return a + b\n"
    program = humaneval_program(
        "def add(a, b):\n", "    return a + b\n", "def check(f):\n    assert f(1, 2) == 3", "add"
    )
    assert run_program(program).passed
