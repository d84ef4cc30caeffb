"""Bad command lines of every entry point end with exit status 2 and one line naming the key and what is allowed (or
what is wrong with the file), never a traceback. Each runs the entry point's `main` in this process, as its console
script does."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

from command_line import run_command
from llmexp.artifacts.inference import save_inference_checkpoint
from llmexp.cli import convert, export, feedback, generate, prepare, serve, train
from llmexp.cli import eval as evaluate
from llmexp.models.bert import BertConfig
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PROGRAMS = {
    "llmexp-train": train.main,
    "llmexp-generate": generate.main,
    "llmexp-eval": evaluate.main,
    "llmexp-export": export.main,
    "llmexp-serve": serve.main,
    "llmexp-convert": convert.main,
    "llmexp-prepare": prepare.main,
    "llmexp-feedback": feedback.main,
}
# What a run writes goes to the test's folder: Hydra's run folder, the tokenizer cache.
WHERE = {
    "llmexp-train": "hydra.run.dir={tmp}/run paths.cache_dir={tmp}/cache",
    "llmexp-eval": "hydra.run.dir={tmp}/eval",
    "llmexp-prepare": "hydra.run.dir={tmp}/prepared",
}
SMOKE = "experiment=smoke logger=none"

BAD = [
    ("llmexp-train optimizer.lr=-1e-3", "optimizer.lr=-0.001: must be a number > 0"),
    ("llmexp-train optimizer.lr=0", "optimizer.lr=0: must be a number > 0"),
    ("llmexp-train model.n_layer=0", "model.n_layer=0: must be an integer >= 1"),
    ("llmexp-train model.n_head=0", "model.n_head=0: must be an integer >= 1"),
    ("llmexp-train model.dropout=1.5", "model.dropout=1.5: must be a number in [0, 1)"),
    ("llmexp-train model.norm_eps=0", "model.norm_eps=0: must be a number > 0"),
    ("llmexp-train trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: must be an integer >= 1"),
    ("llmexp-train trainer.val_check_interval=0", "trainer.val_check_interval=0: must be an integer >= 1"),
    ("llmexp-train trainer.max_steps=-5", "trainer.max_steps=-5: must be an integer >= 1, or -1 (no limit)"),
    ("llmexp-train trainer.devices=0", "trainer.devices=0: must be an integer >= 1, or -1 (all)"),
    ("llmexp-train trainer.limit_val_batches=-1", "trainer.limit_val_batches=-1: must be an integer >= 0"),
    ("llmexp-train data.num_workers=-1", "data.num_workers=-1: must be an integer >= 0"),
    ("llmexp-train data.batch_size=0", "data.batch_size=0: must be an integer >= 1"),
    ("llmexp-train optimizer.betas=[0.9]", "optimizer.betas=[0.9]: must be a list of 2 numbers, each in [0, 1)"),
    ("llmexp-train scheduler.warmup_steps=-10", "scheduler.warmup_steps=-10: must be an integer >= 0"),
    ("llmexp-train tokenizer.vocab_size=10", "tokenizer.vocab_size=10 is below 257 (256 bytes + special tokens)"),
    ("llmexp-train seed=-1", "seed=-1: must be an integer in [0, 4294967295]"),
    ("llmexp-train callbacks.divergence_guard.max_skipped_share=2", "max_skipped_share=2: must be a number in [0, 1]"),
    (f"llmexp-train {SMOKE} data=text_files data.corpus.paths=[{{tmp}}/missing.txt]", "missing.txt' matches no file"),
    (
        f"llmexp-train {SMOKE} data=text_files data.corpus.paths=[{{tmp}}/empty.txt]",
        "the corpus has no train documents",
    ),
    (f"llmexp-train {SMOKE} data=text_files data.corpus.paths=[{{tmp}}/one.txt]", "the corpus has no val documents"),
    (f"llmexp-train {SMOKE} data=shards data.path={{tmp}}/missing", "data.path={tmp}/missing: no such folder"),
    (f"llmexp-train {SMOKE} data=shards data.path={{tmp}}/empty", "no manifest.json (not prepared, or not finished)"),
    ("llmexp-train ckpt_path=auto hydra.run.dir={tmp}/corrupt", "ckpt_path=auto: all 1 checkpoints under"),
    ("llmexp-train ckpt_path={tmp}/gpt.ckpt model=gpt_tiny model.n_layer=3", "model.n_layer=3: ignored, a resumed run"),
    ("llmexp-train ckpt_path={tmp}/gpt.ckpt tokenizer.vocab_size=600", "tokenizer.vocab_size=600: ignored, a resumed"),
    (
        f"llmexp-train {SMOKE} init_from={{tmp}}/gpt.ckpt tokenizer=pretrained tokenizer.path={ASSETS}/tokenizer.json",
        "tokenizer.path=" + str(ASSETS / "tokenizer.json") + ": ignored, init_from={tmp}/gpt.ckpt brings the model's",
    ),
    ("llmexp-train --experimental-rerun {tmp}/config.pickle", "--experimental-rerun {tmp}/config.pickle: refused"),
    ("llmexp-generate ckpt_path={tmp}/gpt.ckpt temperature=-1", "temperature=-1: must be a number in [0, 2]"),
    ("llmexp-generate ckpt_path={tmp}/gpt.ckpt max_new_tokens=0", "max_new_tokens=0: must be an integer >= 1"),
    ("llmexp-generate ckpt_path={tmp}/gpt.ckpt num_samples=0", "num_samples=0: must be an integer >= 1"),
    ("llmexp-generate ckpt_path={tmp}/gpt.ckpt top_p=2", "top_p=2: must be a number in (0, 1], or null"),
    ("llmexp-generate ckpt_path={tmp}/gpt.ckpt top_k=0", "top_k=0: must be an integer >= 1, or null"),
    ("llmexp-generate ckpt_path={tmp}/gpt.ckpt repetition_penalty=1e-300", "repetition_penalty=1e-300: must be"),
    ("llmexp-generate ckpt_path={tmp}/gpt.ckpt temperature=hot", "temperature='hot': must be a number in [0, 2]"),
    ("llmexp-generate ckpt_path={tmp}/bert.ckpt", "model family 'bert' does not generate text"),
    ("llmexp-generate ckpt_path={tmp}/missing.ckpt", "ckpt_path={tmp}/missing.ckpt: no such file"),
    ("llmexp-eval ckpt_path={tmp}/gpt.ckpt eval.limit=0", "eval.limit=0: must be an integer >= 1, or null"),
    ("llmexp-eval ckpt_path={tmp}/gpt.ckpt eval.batch_size=0", "eval.batch_size=0: must be an integer >= 1"),
    ("llmexp-eval ckpt_path={tmp}/gpt.ckpt eval.code_temperature=5", "eval.code_temperature=5: must be a number in"),
    ("llmexp-export ckpt_path={tmp}/gpt.ckpt out={tmp}/hf generation.temperature=5", "generation.temperature=5"),
    ("llmexp-export ckpt_path={tmp}/gpt.ckpt out={tmp}/hf generation.max_new_tokens=0", "max_new_tokens=0: must be"),
    ("llmexp-serve ckpt_path={tmp}/gpt.ckpt serve.port=70000", "serve.port=70000: must be an integer in [0, 65535]"),
    ("llmexp-serve ckpt_path={tmp}/gpt.ckpt serve.max_batch_size=0", "serve.max_batch_size=0: must be an integer >= 1"),
    ("llmexp-serve ckpt_path={tmp}/gpt.ckpt serve.request_timeout_s=0", "serve.request_timeout_s=0: must be a number"),
    ("llmexp-convert ckpt_path={tmp}/empty", "ckpt_path={tmp}/empty: a folder, but not a sharded checkpoint"),
    ("llmexp-convert ckpt_path={tmp}/missing", "ckpt_path={tmp}/missing: no such file or folder"),
    ("llmexp-prepare name=x source.paths=[a] val_fraction=1.5", "val_fraction=1.5: must be a number in [0, 1)"),
    ("llmexp-prepare name=x source.paths=[a] num_workers=-1", "num_workers=-1: must be an integer >= 0"),
    ("llmexp-prepare name=x source.paths=[a] pack.shard_tokens=0", "pack.shard_tokens=0: must be an integer >= 1"),
    ("llmexp-prepare name=x source.paths=[a] dedup.near.threshold=0", "dedup.near.threshold must be in (0, 1]"),
    ("llmexp-feedback out={tmp}/pairs.jsonl min_rating=9", "min_rating=9: must be an integer in [1, 5]"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GPT checkpoint (with the config it was trained with), a BERT one, a run folder of damaged checkpoints,
    corpora that are empty or one line long, an empty folder."""
    tmp = tmp_path_factory.mktemp("bad-command-lines")
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(0)
    gpt = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=64).build()
    config = {"model": {"n_layer": 2, "n_head": 2}, "tokenizer": {"vocab_size": 512}}
    save_inference_checkpoint(tmp / "gpt.ckpt", gpt, tokenizer, {"config": config})
    bert = BertConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, max_seq_len=64).build()
    save_inference_checkpoint(tmp / "bert.ckpt", bert, tokenizer, {})
    (tmp / "corrupt" / "checkpoints").mkdir(parents=True)
    (tmp / "corrupt" / "checkpoints" / "last.ckpt").write_bytes((tmp / "gpt.ckpt").read_bytes()[:1000])
    (tmp / "empty.txt").write_text("")
    (tmp / "one.txt").write_text("A corpus of one line.\n")
    (tmp / "empty").mkdir()
    return tmp


@pytest.mark.parametrize(("line", "expected"), BAD, ids=[line for line, _ in BAD])
def test_a_bad_command_line_gets_exit_2_and_one_line(line, expected, files, monkeypatch, capsys):
    program, *args = shlex.split(line.format(tmp=files))
    given = {arg.split("=", 1)[0] for arg in args}
    where = [arg for arg in WHERE.get(program, "").format(tmp=files).split() if arg.split("=", 1)[0] not in given]
    code, err = run_command(PROGRAMS[program], [program, *args, *where], monkeypatch, capsys)
    assert "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()], err  # one line
    assert err.startswith(f"{program}: error: ") and expected.format(tmp=files) in err, err
    assert code == 2
