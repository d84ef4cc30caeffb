"""Multiple-choice scoring by log-likelihood: acc and acc_norm exactly as lm-evaluation-harness defines them, over
prompts built the way its tasks build them (evaluation.fewshot)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmexp.evaluation.benchmarks import MCExample
from llmexp.evaluation.fewshot import TARGET_DELIMITER, context
from llmexp.evaluation.samples import TaskResult, mean_and_stderr
from llmexp.evaluation.scoring import LogLikelihoodScorer


def choice_predictions(loglikelihoods: Sequence[float], choices: Sequence[str]) -> tuple[int, int]:
    """(argmax of summed log-likelihood, argmax after dividing by the answer's length in characters); ties -> first.

    acc_norm divides by `len(choice)` in characters, not tokens, as lm-eval does.
    """
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    lengths = np.array([float(len(c)) for c in choices])
    return int(np.argmax(lls)), int(np.argmax(lls / lengths))


def evaluate_multiple_choice(
    scorer: LogLikelihoodScorer, examples: Sequence[MCExample], prompts: Sequence[str] | None = None
) -> TaskResult:
    """acc, acc_norm and their standard errors over `examples`, each scored after its prompt (default: zero-shot),
    with one record per item."""
    if not examples:
        raise ValueError("no examples to score")
    prompts = list(prompts) if prompts is not None else [context(example) for example in examples]
    requests = [(p, TARGET_DELIMITER + c) for p, e in zip(prompts, examples, strict=True) for c in e.choices]
    results = scorer.loglikelihood(requests)
    samples, position = [], 0
    for index, (prompt, example) in enumerate(zip(prompts, examples, strict=True)):
        lls = [ll for ll, _ in results[position : position + len(example.choices)]]
        position += len(example.choices)
        pred, pred_norm = choice_predictions(lls, example.choices)
        samples.append(
            {
                "doc_id": index,
                "prompt": prompt,
                "choices": example.choices,
                "gold": example.gold,
                "loglikelihoods": lls,
                "pred": pred,
                "pred_norm": pred_norm,
                "acc": float(pred == example.gold),
                "acc_norm": float(pred_norm == example.gold),
            }
        )
    scores = {
        # What guessing scores: a baseline to read acc against (tasks differ in their number of choices).
        "chance": sum(1 / len(e.choices) for e in examples) / len(examples),
        **mean_and_stderr("acc", [s["acc"] for s in samples]),
        **mean_and_stderr("acc_norm", [s["acc_norm"] for s in samples]),
        "n": float(len(samples)),
    }
    return TaskResult(scores, samples)
