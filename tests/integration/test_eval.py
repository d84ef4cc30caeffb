"""llmexp-eval end to end, agreement with lm-evaluation-harness, and evaluation during training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from llmexp.artifacts.inference import load_for_inference
from llmexp.errors import CheckpointError, ConfigError, DataError
from llmexp.evaluation.multiple_choice import evaluate_multiple_choice
from llmexp.evaluation.run import evaluate
from llmexp.evaluation.scoring import LogLikelihoodScorer
from llmexp.evaluation.suite import EvalSettings, run_tasks
from llmexp.evaluation.tasks import TASKS, load_examples
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer
from llmexp.tracking.metrics import read_metrics_csv
from llmexp.training.run import train

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FAKE_KEY = "sk-llmexp-FAKE-eval-0123456789"


def write_checkpoint(path: Path, seed: int = 0, max_seq_len: int = 256) -> Path:
    """An llmexp checkpoint of a randomly initialised tiny GPT (the format load_for_inference reads)."""
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=max_seq_len)
    model = config.build()
    checkpoint = {
        "llmexp": {"model_config": config.to_dict(), "tokenizer": tokenizer.to_str()},
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def benchmark_dir(root: Path) -> Path:
    """Small piqa and ARC files in their release formats (labels of piqa in the sibling .lst file)."""
    goals = ["open a jar", "boil water", "dry a shirt", "cut bread", "light a room", "cool soup"]
    write_jsonl(
        root / "piqa" / "valid.jsonl",
        [{"goal": g, "sol1": f"use a tool to {g}", "sol2": f"ask the moon to {g} quickly"} for g in goals],
    )
    (root / "piqa" / "valid-labels.lst").write_text("0\n1\n0\n0\n1\n0\n")
    arc_rows = [
        {
            "question": {
                "stem": f"Which is item {i}?",
                "choices": [
                    {"text": t, "label": lab} for t, lab in zip(["red", "a big tree", "sun", "x"], "ABCD", strict=True)
                ],
            },
            "answerKey": "ABCD"[i % 4],
        }
        for i in range(5)
    ]
    write_jsonl(root / "arc_easy_test.jsonl", arc_rows)
    return root


def run_cli(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cwd / "cache"), "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_llmexp_eval_multiple_choice_writes_the_scores_it_computes(tmp_path):
    ckpt = write_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    data = benchmark_dir(tmp_path / "benchmarks")
    out = tmp_path / "eval_out"
    result = run_cli(
        "llmexp.cli.eval",
        [
            f"ckpt_path={ckpt}",
            "eval=multiple_choice",
            "eval.tasks=[piqa,arc_easy]",
            f"eval.data_dir={data}",
            f"hydra.run.dir={out}",
            "device=cpu",
            f"+extra.api_key={FAKE_KEY}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    leaks = [p for p in out.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == []
    report = json.loads((out / "eval_results.json").read_text())
    model, tokenizer, _ = load_for_inference(ckpt)
    expected = run_tasks(model, tokenizer, EvalSettings(tasks=["piqa", "arc_easy"], data_dir=str(data)))
    assert report["results"] == pytest.approx(expected)
    assert report["results"]["piqa/n"] == 6 and report["results"]["arc_easy/n"] == 5
    assert "piqa" in result.stdout and "acc_norm" in result.stdout


def test_missing_task_data_and_train_time_options_are_named(tmp_path, make_cfg):
    ckpt = write_checkpoint(tmp_path / "last.ckpt")
    cfg = make_cfg(
        f"ckpt_path={ckpt}",
        "eval=multiple_choice",
        "eval.tasks=[piqa]",
        f"eval.data_dir={tmp_path / 'empty'}",
        config_name="evaluate",
    )
    with pytest.raises(DataError, match=r"task 'piqa': no local file .* set eval.files.piqa=<path>"):
        evaluate(cfg)
    with pytest.raises(ConfigError, match=r"train-time options\); use eval=suite"):
        evaluate(make_cfg(f"ckpt_path={ckpt}", "eval=val", config_name="evaluate"))


def test_llmexp_eval_refuses_an_encoder_checkpoint(tmp_path, make_cfg):
    from llmexp.models.bert import BertConfig

    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    config = BertConfig(vocab_size=tokenizer.vocab_size, n_embd=16, max_seq_len=32)
    state = {f"model.{k}": v for k, v in config.build().state_dict().items()}
    ckpt = tmp_path / "bert.ckpt"
    torch.save(
        {"llmexp": {"model_config": config.to_dict(), "tokenizer": tokenizer.to_str()}, "state_dict": state}, ckpt
    )
    with pytest.raises(CheckpointError, match=r"model family .bert. does not score text .*llmexp-eval scores causal"):
        evaluate(make_cfg(f"ckpt_path={ckpt}", "eval=multiple_choice", config_name="evaluate"))


def test_every_eval_option_composes_for_llmexp_eval(make_cfg):
    for option in ("suite", "multiple_choice", "generation", "code"):
        cfg = make_cfg("ckpt_path=x.ckpt", f"eval={option}", config_name="evaluate")
        assert EvalSettings.from_config(cfg.eval).tasks


def lm_eval_task_yaml(task_dir: Path, lm_eval_task: str, name: str, data_file: Path) -> None:
    """lm-eval's own task definition (prompt, choices, target, metrics), pointed at a local jsonl file."""
    import lm_eval

    source = Path(lm_eval.__file__).parent / "tasks" / lm_eval_task.split("_")[0] / f"{lm_eval_task}.yaml"
    spec = yaml.safe_load(source.read_text())
    spec.pop("tag", None)
    spec.update(
        task=name,
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={"data_files": {"test": str(data_file)}},
        training_split=None,
        validation_split=None,
        test_split="test",
    )
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / f"{name}.yaml").write_text(yaml.safe_dump(spec))


def piqa_hub_rows(path: Path, limit: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()[:limit]]
    labels = (path.parent / "valid-labels.lst").read_text().split()
    return [{**row, "label": int(label)} for row, label in zip(rows, labels, strict=False)]


def arc_hub_rows(path: Path, limit: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()[:limit]]
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


PARITY_TASKS = ("piqa", "arc_easy")
PARITY_ITEMS = 40


@pytest.fixture
def parity(tmp_path, shared_data, monkeypatch):
    """A tiny checkpoint, 40 real items of each task as local jsonl files, lm-eval task files pointing at them, and
    our own scores (acc, acc_norm and every choice's log-likelihood) on them."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ckpt = write_checkpoint(tmp_path / "last.ckpt", seed=3, max_seq_len=1024)  # no item is truncated
    model, tokenizer, _ = load_for_inference(ckpt)
    scorer = LogLikelihoodScorer(model, tokenizer)
    ours = {}
    for task in PARITY_TASKS:
        if task == "piqa":
            rows = piqa_hub_rows(shared_data / "piqa" / "valid.jsonl", PARITY_ITEMS)
        else:
            rows = arc_hub_rows(shared_data / "arc_easy_test_genmc.jsonl", PARITY_ITEMS)
        data_file = write_jsonl(tmp_path / f"{task}.jsonl", rows)
        lm_eval_task_yaml(tmp_path / "tasks", task, f"local_{task}", data_file)
        examples = load_examples(TASKS[task], None, {task: str(data_file)})
        lls = [[ll for ll, _ in scorer.loglikelihood([(e.query, " " + c) for c in e.choices])] for e in examples]
        ours[task] = {**evaluate_multiple_choice(scorer, examples), "lls": lls}
    return {"ckpt": ckpt, "model": model, "tokenizer": tokenizer, "tasks": tmp_path / "tasks", "ours": ours}


def run_lm_eval(model, task_dir: Path, **kwargs) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model=model,
        tasks=[f"local_{t}" for t in PARITY_TASKS],
        task_manager=TaskManager(include_path=str(task_dir)),
        num_fewshot=0,
        bootstrap_iters=0,
        **kwargs,
    )


def assert_same_accuracy(ours: dict, results: dict) -> None:
    for task in PARITY_TASKS:
        theirs = results["results"][f"local_{task}"]
        assert ours[task]["n"] == PARITY_ITEMS
        assert ours[task]["acc"] == pytest.approx(theirs["acc,none"], abs=1e-9), task
        assert ours[task]["acc_norm"] == pytest.approx(theirs["acc_norm,none"], abs=1e-9), task


@pytest.mark.slow
def test_multiple_choice_accuracy_equals_lm_eval_with_our_model_class(parity):
    """lm-eval's prompts, request encoding and acc/acc_norm over our model class: the same numbers as ours."""
    from llmexp.evaluation.lm_eval_adapter import LLMExpLM

    lm = LLMExpLM(model=parity["model"], tokenizer=parity["tokenizer"], batch_size=16)
    assert_same_accuracy(parity["ours"], run_lm_eval(lm, parity["tasks"]))
    # The same lm-eval task by name through llmexp-eval's task list (eval.tasks=[lm_eval:<task>]).
    settings = EvalSettings(tasks=["lm_eval:local_piqa"], lm_eval_include_path=str(parity["tasks"]))
    got = run_tasks(parity["model"], parity["tokenizer"], settings)
    assert got["lm_eval:local_piqa/acc"] == pytest.approx(parity["ours"]["piqa"]["acc"])
    assert got["lm_eval:local_piqa/acc_norm"] == pytest.approx(parity["ours"]["piqa"]["acc_norm"])


@pytest.mark.slow
def test_eval_during_and_after_training_is_logged(make_cfg, tmp_path):
    data = benchmark_dir(tmp_path / "benchmarks")
    train(
        make_cfg(
            "experiment=smoke",
            "callbacks=eval",
            "callbacks.progress_bar=null",
            "callbacks.samples.max_new_tokens=4",
            "callbacks.periodic_eval.every_n_steps=10",
            "callbacks.periodic_eval.tasks=[heldout,piqa]",
            f"callbacks.periodic_eval.data_dir={data}",
            "callbacks.periodic_eval.perplexity_max_documents=5",
            "eval=multiple_choice",
            "eval.tasks=[piqa]",
            f"eval.data_dir={data}",
        )
    )
    series = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    # Every 10 steps from the callback, then once more at the end from eval=multiple_choice.
    assert [step for step, _ in series["eval/piqa/acc"]] == [10, 20, 20]
    assert [step for step, _ in series["eval/heldout/ppl"]] == [10, 20]
    ppl = [value for _, value in series["eval/heldout/ppl"]]
    assert ppl[1] < ppl[0] < 512  # learning lowers held-out perplexity; both below the uniform 512-token guess
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["eval/piqa/acc"] == series["eval/piqa/acc"][1][1]  # same model at step 20, same score


@pytest.mark.slow
def test_multiple_choice_accuracy_equals_lm_eval_hf_on_the_exported_directory(parity, tmp_path):
    """llmexp-export's transformers directory under lm-eval's own `hf` model: lm-eval tokenises, batches and scores
    with transformers; accuracies equal ours and every choice's log-likelihood matches."""
    out = tmp_path / "hf"
    result = run_cli("llmexp.cli.export", [f"ckpt_path={parity['ckpt']}", f"out={out}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    results = run_lm_eval(
        "hf", parity["tasks"], model_args=f"pretrained={out},dtype=float32", device="cpu", batch_size=16
    )
    assert_same_accuracy(parity["ours"], results)
    for task in PARITY_TASKS:
        samples = sorted(results["samples"][f"local_{task}"], key=lambda s: s["doc_id"])
        theirs = [[float(ll) for ll, _ in s["filtered_resps"]] for s in samples]
        ours = parity["ours"][task]["lls"]
        assert [len(x) for x in theirs] == [len(x) for x in ours]
        flat = [ll for item in theirs for ll in item]
        assert flat == pytest.approx([ll for item in ours for ll in item], abs=1e-3)
