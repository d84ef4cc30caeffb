"""Metrics on predictions and references: thin, checked wrappers over torchmetrics and sacrebleu, one place for the
normalisation rules (so train-time eval, llmexp-eval and tests score text the same way)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassPrecision, MulticlassRecall

# These metrics score what one process holds (evaluation runs on rank 0 of a distributed run): they must never
# all-gather, or rank 0 waits forever for ranks that are not evaluating.
LOCAL = {"sync_on_compute": False, "dist_sync_on_step": False}


def token_accuracy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> float:
    """Share of positions whose most likely token is the label (logits [..., V], labels [...]; ignored ones skipped)."""
    metric = MulticlassAccuracy(num_classes=logits.shape[-1], average="micro", ignore_index=ignore_index, **LOCAL)
    return float(metric(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1)))


def classification_metrics(preds: Sequence[int], target: Sequence[int], num_classes: int) -> dict[str, float]:
    """Accuracy (micro) and macro-averaged precision, recall and F1 over class ids."""
    p, t = torch.as_tensor(list(preds)), torch.as_tensor(list(target))
    kwargs = {"num_classes": num_classes, "average": "macro", "zero_division": 0, **LOCAL}
    return {
        "acc": float(MulticlassAccuracy(num_classes=num_classes, average="micro", **LOCAL)(p, t)),
        "precision": float(MulticlassPrecision(**kwargs)(p, t)),
        "recall": float(MulticlassRecall(**kwargs)(p, t)),
        "f1": float(MulticlassF1Score(**kwargs)(p, t)),
    }


def _references_by_position(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    """sacrebleu wants one list per reference *position*; we take one list of references per hypothesis."""
    per_hyp = [[r] if isinstance(r, str) else list(r) for r in references]
    width = max(len(r) for r in per_hyp)
    return [[refs[i] if i < len(refs) else refs[0] for refs in per_hyp] for i in range(width)]


def bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's standard 13a tokenisation."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), _references_by_position(references)).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Corpus chrF (0-100, character 6-grams, beta 2) as sacrebleu computes it."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(hypotheses), _references_by_position(references)).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (0-1), averaged over pairs; with several references the best one counts."""
    from torchmetrics.text.rouge import ROUGEScore

    metric = ROUGEScore(rouge_keys=("rouge1", "rouge2", "rougeL"), accumulate="best", **LOCAL)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    scores = metric(list(hypotheses), refs)
    return {key: float(scores[f"{key}_fmeasure"]) for key in ("rouge1", "rouge2", "rougeL")}


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_matches(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], normalize: bool = True
) -> list[float]:
    """1.0 where a prediction equals one of its references (after `normalize_answer`, or stripped only), else 0.0."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    clean = normalize_answer if normalize else str.strip
    return [
        float(any(clean(pred) == clean(ref) for ref in ([refs] if isinstance(refs, str) else refs)))
        for pred, refs in zip(predictions, references, strict=True)
    ]


def exact_match(predictions: Sequence[str], references: Sequence[str | Sequence[str]], normalize: bool = True) -> float:
    """Share of predictions equal to one of their references (see `exact_matches`); 0.0 for none."""
    hits = exact_matches(predictions, references, normalize)
    return sum(hits) / len(hits) if hits else 0.0


def _f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[float]:
    """SQuAD's token-level F1 per prediction (bag of normalised words; the best over its references): partial credit
    for extractive and short answers that exact match scores 0."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    return [
        max(_f1(pred, ref) for ref in ([refs] if isinstance(refs, str) else refs))
        for pred, refs in zip(predictions, references, strict=True)
    ]
