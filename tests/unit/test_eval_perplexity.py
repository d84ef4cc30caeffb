"""Held-out perplexity: lm-eval's rolling windows per document, the stream mode by name, counts and announced limits."""

import json
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llmexp.evaluation.perplexity import document_perplexity, evaluate_perplexity, rolling_windows
from llmexp.evaluation.settings import EvalSettings
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CONTEXT = 16


@pytest.fixture(scope="module")
def short_lm() -> tuple[Tokenizer, torch.nn.Module]:
    """A tiny model with a 16-token context, so a short document already needs several windows."""
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=32, max_seq_len=CONTEXT)
    return tokenizer, config.build().eval()


@pytest.mark.parametrize("length", [1, 5, 15, 16, 17, 31, 33, 50])
def test_rolling_windows_equal_lm_eval(length):
    utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(100, 100 + length))
    theirs = [
        utils.make_disjoint_window(w)
        for w in utils.get_rolling_token_windows(token_list=tokens, prefix_token=0, max_seq_len=CONTEXT, context_len=1)
    ]
    assert list(rolling_windows(tokens, 0, CONTEXT)) == theirs
    assert [t for _, cont in theirs for t in cont] == tokens  # every token predicted once


@torch.no_grad()
def reference_loglikelihood(model, ids: list[int], eos: int) -> float:
    """Every token of a document, each window one forward pass of at most CONTEXT inputs."""
    total = 0.0
    for context, continuation in rolling_windows(ids, eos, CONTEXT):
        inputs = (context + continuation)[-(CONTEXT + 1) :]
        logprobs = F.log_softmax(model(torch.tensor([inputs[:-1]]))[0].double(), dim=-1)
        targets = inputs[1:][-len(continuation) :]
        rows = logprobs[-len(continuation) :]
        total += float(rows.gather(1, torch.tensor(targets)[:, None]).sum())
    return total


def test_document_mode_scores_each_document_alone_and_counts_what_it_covered(short_lm):
    tokenizer, model = short_lm
    texts = ["def add(a, b):\n    return a + b\n" * 3, "x = 1", "The quick brown fox jumps over the lazy dog."]
    got = document_perplexity(model, tokenizer, texts, batch_size=2)
    lls = [reference_loglikelihood(model, tokenizer.encode(t), tokenizer.eos_id) for t in texts]
    assert [s["loglikelihood"] for s in got.samples] == pytest.approx(lls, abs=1e-3)
    tokens = sum(len(tokenizer.encode(t)) for t in texts)
    nbytes = sum(len(t.encode()) for t in texts)
    words = sum(len(t.split()) + (t[-1].isspace()) for t in texts)  # re.split counts a trailing empty word, as lm-eval
    assert got.scores["documents"] == 3 and got.scores["tokens"] == tokens and got.scores["bytes"] == nbytes
    assert got.scores["ppl"] == pytest.approx(math.exp(-sum(lls) / tokens), rel=1e-4)
    assert got.scores["bpb"] == pytest.approx(-sum(lls) / nbytes / math.log(2), rel=1e-4)
    assert got.scores["word_ppl"] == pytest.approx(math.exp(-sum(lls) / words), rel=1e-4)


def write_docs(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps({"text": f"document number {i} says hello"}) + "\n" for i in range(count)))
    return path


def test_auto_mode_is_document_for_several_documents_and_stream_for_one(short_lm, tmp_path):
    tokenizer, model = short_lm
    many = write_docs(tmp_path / "docs.jsonl", 4)
    one = tmp_path / "one.txt"
    one.write_text("a single long text " * 10)
    several = evaluate_perplexity(model, tokenizer, EvalSettings(tasks=["heldout"], perplexity_files=[str(many)]))
    single = evaluate_perplexity(model, tokenizer, EvalSettings(tasks=["heldout"], perplexity_files=[str(one)]))
    assert several.info["mode"] == "document" and len(several.samples) == 4
    assert single.info["mode"] == "stream" and single.scores["documents"] == 1
    stream = EvalSettings(tasks=["heldout"], perplexity_files=[str(many)], perplexity_mode="stream")
    streamed = evaluate_perplexity(model, tokenizer, stream)
    assert streamed.info["mode"] == "stream" and streamed.scores["ppl"] != several.scores["ppl"]


def test_a_document_limit_is_announced_and_recorded(short_lm, tmp_path, caplog):
    tokenizer, model = short_lm
    files = [str(write_docs(tmp_path / "docs.jsonl", 6))]
    settings = EvalSettings(tasks=["heldout"], perplexity_files=files, perplexity_max_documents=4)
    with caplog.at_level(logging.WARNING):
        got = evaluate_perplexity(model, tokenizer, settings)
    assert "heldout scores the first 4 of 6 documents (eval.perplexity_max_documents)" in caplog.text
    assert got.scores["documents"] == 4 and got.info["documents_available"] == 6 and got.info["documents_limit"] == 4
