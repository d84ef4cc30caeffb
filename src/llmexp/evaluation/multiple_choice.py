"""Multiple-choice scoring by log-likelihood: acc and acc_norm exactly as lm-evaluation-harness defines them, with
few-shot prompts built the way its tasks build them."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from llmexp.evaluation.benchmarks import MCExample
from llmexp.evaluation.scoring import LogLikelihoodScorer

TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


def fewshot_context(
    example: MCExample, pool: Sequence[MCExample], num_fewshot: int, rng: random.Random, exclude: int | None = None
) -> str:
    """description + k solved examples (query, space, gold answer) separated by blank lines + the query."""
    if num_fewshot <= 0:
        return example.description + example.query
    candidates = [i for i in range(len(pool)) if i != exclude]
    shots = [pool[i] for i in rng.sample(candidates, min(num_fewshot, len(candidates)))]
    solved = [s.query + TARGET_DELIMITER + s.choices[s.gold] for s in shots]
    return example.description + FEWSHOT_DELIMITER.join(solved) + FEWSHOT_DELIMITER + example.query


def choice_predictions(loglikelihoods: Sequence[float], choices: Sequence[str]) -> tuple[int, int]:
    """(argmax of summed log-likelihood, argmax after dividing by the answer's length in characters); ties -> first.

    acc_norm divides by `len(choice)` in characters, not tokens, as lm-eval does.
    """
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    lengths = np.array([float(len(c)) for c in choices])
    return int(np.argmax(lls)), int(np.argmax(lls / lengths))


def evaluate_multiple_choice(
    scorer: LogLikelihoodScorer,
    examples: Sequence[MCExample],
    num_fewshot: int = 0,
    fewshot_pool: Sequence[MCExample] | None = None,
    seed: int = 1234,
) -> dict[str, float]:
    """acc, acc_norm and their standard errors over `examples` (few-shot examples from `fewshot_pool`, default the
    other examples of the same set)."""
    if not examples:
        raise ValueError("no examples to score")
    rng = random.Random(seed)
    pool = fewshot_pool if fewshot_pool is not None else examples
    requests: list[tuple[str, str]] = []
    for index, example in enumerate(examples):
        context = fewshot_context(example, pool, num_fewshot, rng, exclude=index if fewshot_pool is None else None)
        requests.extend((context, TARGET_DELIMITER + choice) for choice in example.choices)
    results = scorer.loglikelihood(requests)
    acc, acc_norm, position = [], [], 0
    for example in examples:
        lls = [ll for ll, _ in results[position : position + len(example.choices)]]
        position += len(example.choices)
        pred, pred_norm = choice_predictions(lls, example.choices)
        acc.append(float(pred == example.gold))
        acc_norm.append(float(pred_norm == example.gold))
    n = len(examples)
    return {
        "acc": float(np.mean(acc)),
        "acc_stderr": float(np.std(acc, ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
        "acc_norm": float(np.mean(acc_norm)),
        "acc_norm_stderr": float(np.std(acc_norm, ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
        "n": float(n),
    }
