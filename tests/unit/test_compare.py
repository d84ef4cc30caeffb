"""What llmexp-compare reads from run folders and how it ranks them; the W&B config cleaning."""

import json

import yaml

from fake_runs import write_run
from llmexp.tracking.compare import comparison_rows, rank_metric
from llmexp.tracking.metrics import plotted
from llmexp.tracking.runs import discover_runs
from llmexp.tracking.wandb import clean_config


def test_val_curves_end_without_the_flat_hook_of_the_final_validation(tmp_path):
    (run,) = discover_runs([write_run(tmp_path / "r", ["optimizer.lr=1e-3"], 2.0, steps=100, val_every=50)])
    val = run.curves["val/loss"]
    assert [s for s, _ in val] == [49, 99, 100] and val[-1][1] == val[-2][1]  # as Lightning logs it
    assert [s for s, _ in plotted(val)] == [49, 99]
    assert plotted([(10, 3.0), (10, 2.5), (20, 2.0)]) == [(10, 3.0), (20, 2.0)]  # one value per step


def test_runs_with_different_tokenizers_are_ranked_by_bits_per_byte(tmp_path):
    # A small vocabulary: lower loss per token (short, easy tokens) but worse bits per byte.
    write_run(tmp_path / "small_vocab", ["tokenizer.vocab_size=512"], 1.5, tokenizer="a", bytes_per_token=1.2)
    write_run(tmp_path / "large_vocab", ["tokenizer.vocab_size=8192"], 2.5, tokenizer="b", bytes_per_token=3.5)
    runs = discover_runs([tmp_path])
    assert rank_metric(runs)[0] == "val/bpb"
    _, rows = comparison_rows(runs)
    assert [r[0] for r in rows] == ["large_vocab", "small_vocab"]
    assert rank_metric([r for r in runs if r.name == "small_vocab"] * 2)[0] == "val/loss"  # one tokenizer


def test_columns_are_the_differing_overrides_without_sweep_bookkeeping_and_the_eval_scores(tmp_path):
    for i, lr in enumerate(("1e-3", "3e-3")):
        write_run(tmp_path / str(i), ["experiment=smoke", f"optimizer.lr={lr}", f"++sweep.trial={i}"], 2.0 + i)
    final = json.loads((tmp_path / "0" / "final_metrics.json").read_text())
    (tmp_path / "0" / "final_metrics.json").write_text(json.dumps({**final, "eval/piqa/acc": 0.5}))
    evals = {"results": {"heldout/ppl": 12.5, "piqa/acc": 0.625}}  # a later llmexp-eval of the checkpoint
    (tmp_path / "0" / "evals.jsonl").write_text(json.dumps(evals) + "\n")
    header, rows = comparison_rows(discover_runs([tmp_path]))
    assert header[:3] == ["run", "optimizer.lr", "val/loss"]
    assert header[-2:] == ["eval/heldout/ppl", "eval/piqa/acc"]
    assert rows[0][-2:] == ["12.5000", "0.6250"] and rows[1][-2:] == ["", ""]


def test_the_wandb_config_is_flat_without_targets_paths_or_logger_settings():
    resolved = yaml.safe_load(
        """
        model: {_target_: llmexp.models.gpt.GPTConfig, n_layer: 2}
        optimizer: {_target_: torch.optim.AdamW, _partial_: true, lr: 0.001}
        paths: {output_dir: /abs/run}
        logger: {project: llm}
        callbacks: {model_checkpoint: {dirpath: /abs/run/checkpoints, monitor: val/loss}}
        data: {batch_size: 8}
        """
    )
    assert clean_config(resolved) == {
        "model.n_layer": 2,
        "optimizer.lr": 0.001,
        "callbacks.model_checkpoint.monitor": "val/loss",
        "data.batch_size": 8,
    }
