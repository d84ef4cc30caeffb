"""llmexp-eval end to end and evaluation during training (agreement with lm-evaluation-harness:
test_eval_lm_eval_parity.py)."""

import json
import re
from pathlib import Path

import pytest
import torch

from eval_helpers import ASSETS, run_cli, write_checkpoint, write_jsonl
from llmexp.artifacts.inference import load_for_inference
from llmexp.errors import CheckpointError, ConfigError, DataError
from llmexp.evaluation.run import evaluate
from llmexp.evaluation.suite import EvalSettings, run_tasks
from llmexp.tokenizer import Tokenizer
from llmexp.tracking.metrics import read_metrics_csv
from llmexp.training.run import train

FAKE_KEY = "sk-llmexp-FAKE-eval-0123456789"


def benchmark_dir(root: Path) -> Path:
    """Small piqa and ARC files in their release formats (labels of piqa in the sibling .lst file)."""
    goals = ["open a jar", "boil water", "dry a shirt", "cut bread", "light a room", "cool soup"]
    write_jsonl(
        root / "piqa" / "valid.jsonl",
        [{"goal": g, "sol1": f"use a tool to {g}", "sol2": f"ask the moon to {g} quickly"} for g in goals],
    )
    (root / "piqa" / "valid-labels.lst").write_text("0\n1\n0\n0\n1\n0\n")
    return root


def arc_release_rows() -> list[dict]:
    return [
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


def test_llmexp_eval_follows_its_own_advice_and_keeps_every_answer(tmp_path):
    """A task without data is named with the override to set; set as written (`eval.files.arc_easy=<path>`, to a
    release-named `test.jsonl`), the run scores it: readable `task/metric` keys, a table, the scores it computes,
    one jsonl of per-item records per task, and no secret in any file."""
    ckpt = write_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    data = benchmark_dir(tmp_path / "benchmarks")
    arc = write_jsonl(tmp_path / "elsewhere" / "test.jsonl", arc_release_rows())
    quiz = write_jsonl(tmp_path / "mine" / "quiz.jsonl", [{"query": "2+2=", "choices": ["4", "5"], "gold": 0}] * 3)
    out = tmp_path / "eval_out"
    args = [
        f"ckpt_path={ckpt}",
        "eval=multiple_choice",
        f"eval.tasks=[piqa,arc_easy,mc:{quiz}]",
        f"eval.data_dir={data}",
    ]
    args += ["device=cpu", f"+extra.api_key={FAKE_KEY}"]
    refused = run_cli("llmexp.cli.eval", [*args, f"hydra.run.dir={tmp_path / 'first'}"], tmp_path)
    assert refused.returncode == 2, refused.stderr[-3000:]
    advice = re.search(r"set (eval\.files\.arc_easy)=<path>", refused.stderr)
    assert advice, refused.stderr[-3000:]
    result = run_cli("llmexp.cli.eval", [*args, f"{advice.group(1)}={arc}", f"hydra.run.dir={out}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [p for p in out.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    report = json.loads((out / "eval_results.json").read_text())
    model, tokenizer, _ = load_for_inference(ckpt)
    tasks = ["piqa", "arc_easy", f"mc:{quiz}"]
    expected = run_tasks(model, tokenizer, EvalSettings(tasks, data_dir=str(data), files={"arc_easy": str(arc)}))
    assert report["results"] == pytest.approx(expected)
    assert {key.split("/")[0] for key in report["results"]} == {"piqa", "arc_easy", "quiz"}
    assert report["results"]["piqa/n"] == 6 and report["results"]["arc_easy/n"] == 5
    assert report["tasks"]["arc_easy"]["source"] == str(arc) and report["tasks"]["piqa"]["split"] == "validation"
    records = [json.loads(line) for line in (out / "samples" / "piqa.jsonl").read_text().splitlines()]
    assert len(records) == 6 and records[1]["prompt"] == "Question: boil water\nAnswer:" and records[1]["gold"] == 1
    assert sum(r["acc"] for r in records) / 6 == pytest.approx(report["results"]["piqa/acc"])
    assert len((out / "samples" / "quiz.jsonl").read_text().splitlines()) == 3
    assert re.search(r"^quiz\s+acc_norm", result.stdout, re.M) and "mc:" not in result.stdout


def test_missing_task_data_and_train_time_options_are_named(tmp_path, make_cfg):
    ckpt = write_checkpoint(tmp_path / "last.ckpt")
    cfg = make_cfg(
        f"ckpt_path={ckpt}",
        "eval=multiple_choice",
        "eval.tasks=[piqa]",
        f"eval.data_dir={tmp_path / 'empty'}",
        config_name="evaluate",
    )
    with pytest.raises(DataError, match=r"task 'piqa': no validation file under .* set eval.files.piqa=<path>"):
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
