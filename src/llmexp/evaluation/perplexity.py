"""Perplexity of held-out text, two ways: `document` scores each document on its own with lm-evaluation-harness's
rolling log-likelihood (the first token predicted from end-of-text, then disjoint windows of the model's context; its
wikitext metrics), `stream` joins the documents with end-of-text into one stream cut into fixed windows (the
training-time view). Every result says how many documents, tokens and bytes it covered."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from torch import nn

from llmexp.errors import DataError
from llmexp.evaluation.benchmarks import read_records
from llmexp.evaluation.samples import TaskResult
from llmexp.evaluation.scoring import LogLikelihoodScorer, text_perplexity
from llmexp.evaluation.settings import EvalSettings
from llmexp.tokenizer import Tokenizer

log = logging.getLogger(__name__)


def rolling_windows(tokens: list[int], prefix_token: int, max_length: int) -> Iterator[tuple[list[int], list[int]]]:
    """(context, continuation) pairs predicting every token of `tokens` exactly once, as lm-eval's
    `get_rolling_token_windows(..., context_len=1)` + `make_disjoint_window`: the first window is conditioned on
    `prefix_token`; each later one predicts up to max_length tokens from the token before them, and the last, shorter
    one is given as much preceding context as fills the window."""
    if not tokens:
        return
    first = min(max_length, len(tokens))
    yield [prefix_token], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        count = min(len(tokens) - predicted, max_length)
        end = predicted + count
        window = tokens[end - max_length - 1 : end - 1]
        yield window[: len(window) - (count - 1)], tokens[predicted:end]
        predicted = end


def document_loglikelihoods(scorer: LogLikelihoodScorer, texts: Sequence[str]) -> list[tuple[float, int]]:
    """(total log-likelihood, tokens) of each text scored alone (lm-eval's loglikelihood_rolling)."""
    encoded = [scorer.tokenizer.encode(text) for text in texts]
    pairs = [list(rolling_windows(ids, scorer.tokenizer.eos_id, scorer.max_length)) for ids in encoded]
    flat = scorer.loglikelihood_tokens([pair for windows in pairs for pair in windows])
    totals, position = [], 0
    for ids, windows in zip(encoded, pairs, strict=True):
        totals.append((sum(ll for ll, _ in flat[position : position + len(windows)]), len(ids)))
        position += len(windows)
    return totals


def document_perplexity(
    model: nn.Module, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 8
) -> TaskResult:
    """Token perplexity and mean loss, bits per UTF-8 byte and word perplexity (lm-eval's bits_per_byte and
    word_perplexity: whitespace-separated words) over documents scored one by one."""
    scored = document_loglikelihoods(LogLikelihoodScorer(model, tokenizer, batch_size), texts)
    samples = [
        {"doc_id": i, "loglikelihood": ll, "tokens": n, "bytes": len(text.encode("utf-8")), "words": _words(text)}
        for i, (text, (ll, n)) in enumerate(zip(texts, scored, strict=True))
    ]
    nats = -sum(s["loglikelihood"] for s in samples)
    tokens, nbytes, words = (sum(s[key] for s in samples) for key in ("tokens", "bytes", "words"))
    if tokens == 0:
        raise DataError("perplexity: the held-out documents have no tokens")
    scores = {
        "ppl": math.exp(nats / tokens),
        "loss": nats / tokens,
        "bpb": nats / (math.log(2) * max(nbytes, 1)),
        "word_ppl": math.exp(nats / max(words, 1)),
        "documents": float(len(texts)),
        "tokens": float(tokens),
        "bytes": float(nbytes),
    }
    return TaskResult(scores, samples)


def _words(text: str) -> int:
    return len(re.split(r"\s+", text))


def heldout_texts(settings: EvalSettings) -> list[str]:
    """eval.perplexity_files (plain text = one document; jsonl/json/csv/parquet = the `text` field of each row), else
    the validation split of the embedded pydocs corpus (the same documents training holds out)."""
    if not settings.perplexity_files:
        from llmexp.data.pydocs import PydocsCorpus

        return [doc.text for doc in PydocsCorpus().documents("val")]
    texts: list[str] = []
    for name in settings.perplexity_files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"eval.perplexity_files: {path}: no such file")
        if path.suffix in (".txt", ".md", ".py") or path.suffix == "":
            texts.append(path.read_text(encoding="utf-8"))
        else:
            texts.extend(str(row["text"]) for row in read_records(path))
    return texts


def evaluate_perplexity(model: nn.Module, tokenizer: Tokenizer, settings: EvalSettings) -> TaskResult:
    """The held-out texts in eval.perplexity_mode (auto: document for several documents, stream for one); a
    perplexity_max_documents limit is announced and recorded with the counts."""
    texts = heldout_texts(settings)
    available, limit = len(texts), settings.perplexity_max_documents
    if limit is not None and limit < available:
        log.warning(
            "eval: heldout scores the first %d of %d documents (eval.perplexity_max_documents)", limit, available
        )
        texts = texts[:limit]
    mode = settings.perplexity_mode
    if mode == "auto":
        mode = "document" if len(texts) > 1 else "stream"
    if mode == "document":
        result = document_perplexity(model, tokenizer, texts, settings.batch_size)
    else:
        result = TaskResult(text_perplexity(model, tokenizer, texts, batch_size=settings.batch_size))
    result.info.update(mode=mode, documents_available=available, documents_limit=limit)
    return result
