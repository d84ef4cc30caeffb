"""llmexp-eval against lm-evaluation-harness on the same model and the same real items: zero-shot and 2-shot prompts
and scores item for item (lm-eval's `hf` model on the exported transformers directory, and lm-eval over our model
class), per-document rolling log-likelihood, and `lm_eval --model llmexp` on lm-eval's own command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eval_helpers import run_cli, write_checkpoint, write_jsonl
from llmexp.artifacts.inference import load_for_inference
from llmexp.evaluation.perplexity import document_perplexity
from llmexp.evaluation.suite import EvalSettings, run_suite, run_tasks

lm_eval = pytest.importorskip("lm_eval")
pytestmark = pytest.mark.slow

TASKS = ("arc_easy", "piqa")
ITEMS = 40


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny checkpoint with a context long enough that no item is truncated, and its transformers directory."""
    root = tmp_path_factory.mktemp("parity_model")
    ckpt = write_checkpoint(root / "last.ckpt", seed=3, max_seq_len=1024)
    out = root / "hf"
    result = run_cli("llmexp.cli.export", [f"ckpt_path={ckpt}", f"out={out}"], root)
    assert result.returncode == 0, result.stderr[-3000:]
    model, tokenizer, _ = load_for_inference(ckpt)
    return {"ckpt": ckpt, "hf": out, "model": model, "tokenizer": tokenizer}


def arc_hub_rows(lines: list[str]) -> list[dict]:
    rows = [json.loads(line) for line in lines]
    return [
        {
            "id": r["id"],
            "question": r["question"]["stem"],
            "choices": {
                "text": [c["text"] for c in r["question"]["choices"]],
                "label": [c["label"] for c in r["question"]["choices"]],
            },
            "answerKey": r["answerKey"],
        }
        for r in rows
    ]


def piqa_hub_rows(folder: Path, start: int, stop: int) -> list[dict]:
    rows = (folder / "valid.jsonl").read_text().splitlines()[start:stop]
    labels = (folder / "valid-labels.lst").read_text().split()[start:stop]
    return [{**json.loads(row), "label": int(label)} for row, label in zip(rows, labels, strict=True)]


def lm_eval_task_yaml(task_dir: Path, task: str, files: dict[str, Path], splits: dict[str, str | None]) -> None:
    """lm-eval's own task definition (prompt, choices, target, metrics, few-shot rule), its data from local files."""
    source = Path(lm_eval.__file__).parent / "tasks" / task.split("_")[0] / f"{task}.yaml"
    spec = yaml.safe_load(source.read_text())
    spec.pop("tag", None)
    spec.update(task=f"local_{task}", dataset_path="json", dataset_name=None, **splits)
    spec["dataset_kwargs"] = {"data_files": {split: str(path) for split, path in files.items()}}
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / f"local_{task}.yaml").write_text(yaml.safe_dump(spec))


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory, shared_data):
    """Real ARC-Easy and PIQA items in task folders (release names: test.jsonl, validation.jsonl, train.jsonl, the
    train files taken from other items of the same release), lm-eval task files reading the same files, and one
    lm-eval task index over them (building one takes seconds)."""
    from lm_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("parity_data")
    data, tasks = root / "benchmarks", root / "lm_eval_tasks"
    arc_lines = (shared_data / "arc_easy_test_genmc.jsonl").read_text().splitlines()
    arc = {
        "test": write_jsonl(data / "arc_easy" / "test.jsonl", arc_hub_rows(arc_lines[: ITEMS + 20])),
        "train": write_jsonl(data / "arc_easy" / "train.jsonl", arc_hub_rows(arc_lines[100:300])),
    }
    piqa = {
        "validation": write_jsonl(data / "piqa" / "validation.jsonl", piqa_hub_rows(shared_data / "piqa", 0, ITEMS)),
        "train": write_jsonl(data / "piqa" / "train.jsonl", piqa_hub_rows(shared_data / "piqa", 1000, 1200)),
    }
    arc_splits = {"training_split": "train", "validation_split": None, "test_split": "test"}
    lm_eval_task_yaml(tasks, "arc_easy", arc, arc_splits)
    lm_eval_task_yaml(tasks, "piqa", piqa, {})  # its own splits: train, validation, no test
    return {"data": data, "tasks": tasks, "index": TaskManager(include_path=str(tasks))}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def run_lm_eval(model, benchmark: dict, num_fewshot: int, **kwargs) -> dict:
    return lm_eval.simple_evaluate(
        model=model,
        tasks=[f"local_{t}" for t in TASKS],
        task_manager=benchmark["index"],
        num_fewshot=num_fewshot,
        limit=ITEMS,
        bootstrap_iters=0,
        log_samples=True,
        **kwargs,
    )


def ours(exported: dict, benchmark: dict, num_fewshot: int) -> dict:
    settings = EvalSettings(tasks=list(TASKS), data_dir=str(benchmark["data"]), num_fewshot=num_fewshot, limit=ITEMS)
    return run_suite(exported["model"], exported["tokenizer"], settings)


def assert_same_items(mine: dict, results: dict, lls_too: bool) -> None:
    """Each item: the same prompt, the same correctness; each choice: the same log-likelihood (lm-eval's `hf`)."""
    for task in TASKS:
        theirs = sorted(results["samples"][f"local_{task}"], key=lambda s: s["doc_id"])
        assert len(theirs) == len(mine[task].samples) == ITEMS
        for item, sample in zip(mine[task].samples, theirs, strict=True):
            assert [ctx for ctx, _ in sample["arguments"]] == [item["prompt"]] * len(item["choices"]), task
            assert item["acc"] == sample["acc"] and item["acc_norm"] == sample["acc_norm"], (task, item["doc_id"])
            if lls_too:
                assert [float(ll) for ll, _ in sample["filtered_resps"]] == pytest.approx(
                    item["loglikelihoods"], abs=2e-3
                )
        summary = results["results"][f"local_{task}"]
        assert mine[task].scores["acc"] == pytest.approx(summary["acc,none"], abs=1e-9), task


def test_zero_shot_equals_lm_eval_over_our_model_class(exported, benchmark):
    """lm-eval's prompts, request encoding and acc/acc_norm over our model class: the same numbers as ours."""
    from llmexp.evaluation.lm_eval_adapter import LLMExpLM

    lm = LLMExpLM(model=exported["model"], tokenizer=exported["tokenizer"], batch_size=16)
    mine = ours(exported, benchmark, 0)
    assert_same_items(mine, run_lm_eval(lm, benchmark, 0), lls_too=False)
    # The same lm-eval task by name through llmexp-eval's task list (eval.tasks=[lm_eval:<task>]).
    settings = EvalSettings(tasks=["lm_eval:local_piqa"], lm_eval_include_path=str(benchmark["tasks"]), limit=ITEMS)
    got = run_tasks(exported["model"], exported["tokenizer"], settings)
    assert got["lm_eval:local_piqa/acc"] == pytest.approx(mine["piqa"].scores["acc"])


@pytest.mark.parametrize("num_fewshot", [0, 2])
def test_prompts_and_scores_equal_lm_eval_hf_on_the_exported_directory_item_for_item(exported, benchmark, num_fewshot):
    """lm-eval's own `hf` model on llmexp-export's transformers directory: at 2-shot lm-eval draws ARC's examples
    from its train split and PIQA's from its train split leaving the item out of its draw (k+1, then drop), seeded
    per task; every prompt, every choice's log-likelihood and every item's correctness equal ours."""
    args = f"pretrained={exported['hf']},dtype=float32"
    results = run_lm_eval("hf", benchmark, num_fewshot, model_args=args, device="cpu", batch_size=16)
    mine = ours(exported, benchmark, num_fewshot)
    assert_same_items(mine, results, lls_too=True)
    if num_fewshot:
        assert mine["arc_easy"].info["fewshot_split"] == "train" and not mine["arc_easy"].info["fewshot_excludes_item"]
        assert mine["piqa"].info["fewshot_excludes_item"]
        assert mine["arc_easy"].samples[0]["prompt"].count("\nAnswer:") == 3


def test_document_perplexity_equals_lm_eval_rolling_loglikelihood(exported, shared_data):
    """Documents longer than the 1024-token context, scored alone in lm-eval's rolling windows by lm-eval's `hf`
    model on the exported directory: the same total log-likelihood per document."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    text = (shared_data / "tinyshakespeare.txt").read_text()
    documents = [text[:7000], text[7000:7400], text[10000:14000]]
    hf = HFLM(pretrained=str(exported["hf"]), dtype="float32", device="cpu", batch_size=4)
    requests = [Instance("loglikelihood_rolling", {}, (doc,), i) for i, doc in enumerate(documents)]
    theirs = hf.loglikelihood_rolling(requests)
    got = document_perplexity(exported["model"], exported["tokenizer"], documents, batch_size=4)
    assert max(s["tokens"] for s in got.samples) > 1024  # several windows
    assert [s["loglikelihood"] for s in got.samples] == pytest.approx(theirs, rel=1e-5)


def test_lm_eval_command_line_finds_the_llmexp_model(exported, benchmark, tmp_path):
    """`lm_eval --model llmexp --model_args ckpt_path=...` in a fresh process: the installed entry point and startup
    hook register the model name; lm-eval's scores equal llmexp-eval's."""
    out = tmp_path / "lm_eval_out"
    command = [sys.executable, "-m", "lm_eval", "--model", "llmexp", "--model_args", f"ckpt_path={exported['ckpt']}"]
    command += ["--tasks", "local_piqa", "--include_path", str(benchmark["tasks"]), "--limit", "8"]
    command += ["--device", "cpu", "--output_path", str(out)]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert "no model for this name found" not in result.stderr, (
        "llmexp's lm-eval hook is not installed: reinstall llmexp"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (report,) = out.rglob("results_*.json")
    theirs = json.loads(report.read_text())["results"]["local_piqa"]["acc,none"]
    settings = EvalSettings(tasks=["piqa"], data_dir=str(benchmark["data"]), limit=8)
    assert run_tasks(exported["model"], exported["tokenizer"], settings)["piqa/acc"] == pytest.approx(theirs)
