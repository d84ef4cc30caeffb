"""Generation tasks: prompts through the shared generation loop, answers scored by exact match, BLEU, chrF and ROUGE;
code tasks: sampled completions executed against their tests (pass@k)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from llmexp.evaluation import metrics, progress
from llmexp.evaluation.benchmarks import GenExample
from llmexp.evaluation.code_exec import pass_at_k_scores, run_code_samples, truncate_completion
from llmexp.evaluation.fewshot import context
from llmexp.evaluation.samples import TaskResult, mean_and_stderr
from llmexp.models.generation import SamplingConfig, generate
from llmexp.tokenizer import Tokenizer

# A generated answer ends where the model starts a new example.
ANSWER_STOPS = ("\n\n", "\nQuestion:", "\nProblem:")


def cut_at_stops(text: str, stops: Sequence[str] = ANSWER_STOPS) -> str:
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:cut]


def generate_completions(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    sampling: SamplingConfig,
    batch_size: int = 8,
    seed: int = 0,
) -> list[str]:
    """Decoded continuations of each prompt (prompt excluded), in order."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    texts: list[str] = []
    progress.expect(len(prompts), "answers")
    for start in range(0, len(prompts), batch_size):
        progress.advance(len(prompts[start : start + batch_size]))
        batch = [tokenizer.encode(p) or [tokenizer.eos_id] for p in prompts[start : start + batch_size]]
        outputs = generate(model, batch, sampling, tokenizer.eos_id, generator=generator)
        texts.extend(tokenizer.decode(ids) for ids in outputs)
    return texts


def evaluate_generation(
    model: nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[GenExample],
    prompts: Sequence[str] | None = None,
    max_new_tokens: int = 64,
    extract: Callable[[str], str] | None = None,
    batch_size: int = 8,
) -> TaskResult:
    """Greedy answers after each prompt (default: zero-shot); exact_match and token F1 on the extracted answer
    (compared as extracted, without SQuAD normalisation, when the task extracts one), BLEU/chrF/ROUGE on the answer."""
    if not examples:
        raise ValueError("no examples to score")
    prompts = list(prompts) if prompts is not None else [context(example) for example in examples]
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0)
    raw = generate_completions(model, tokenizer, prompts, sampling, batch_size)
    answers = [cut_at_stops(text).strip() for text in raw]
    refs = [ex.references for ex in examples]
    extracted = [extract(a) for a in answers] if extract else answers
    hits = metrics.exact_matches(extracted, refs, normalize=extract is None)
    f1 = metrics.token_f1(extracted, refs)
    samples = [
        {"doc_id": i, "prompt": p, "references": r, "generation": g, "answer": a, "extracted": e, "exact_match": h,
         "f1": f}
        for i, (p, r, g, a, e, h, f) in enumerate(zip(prompts, refs, raw, answers, extracted, hits, f1, strict=True))
    ]  # fmt: skip
    scores = {
        **mean_and_stderr("exact_match", hits),
        "f1": sum(f1) / len(f1),
        "bleu": metrics.bleu(answers, refs),
        "chrf": metrics.chrf(answers, refs),
        **metrics.rouge(answers, refs),
        "n": float(len(examples)),
    }
    return TaskResult(scores, samples)


def evaluate_code(
    model: nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[GenExample],
    n_samples: int = 1,
    ks: Sequence[int] = (1,),
    temperature: float = 0.8,
    max_new_tokens: int = 128,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    seed: int = 0,
) -> TaskResult:
    """pass@k over HumanEval-style problems: greedy when one sample, else `n_samples` sampled completions each; one
    record per problem with its completions and how each ran."""
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature if n_samples > 1 else 0.0)
    prompts = [ex.prompt for ex in examples for _ in range(n_samples)]
    completions = [truncate_completion(t) for t in generate_completions(model, tokenizer, prompts, sampling, seed=seed)]
    samples = [completions[i * n_samples : (i + 1) * n_samples] for i in range(len(examples))]
    problems = [{"prompt": ex.prompt, **ex.extra} for ex in examples]
    runs = run_code_samples(problems, samples, timeout_s, memory_mb)
    records = [
        {
            "doc_id": i,
            "task_id": problem.get("task_id"),
            "prompt": problem["prompt"],
            "completions": completions_i,
            "status": [r.status for r in results],
            "passed": [r.passed for r in results],
        }
        for i, (problem, completions_i, results) in enumerate(zip(problems, samples, runs, strict=True))
    ]
    return TaskResult({**pass_at_k_scores(runs, list(ks)), "n": float(len(examples))}, records)
