"""Generation tasks: prompts through the shared generation loop, answers scored by exact match, BLEU, chrF and ROUGE;
code tasks: sampled completions executed against their tests (pass@k)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
from torch import nn

from llmexp.evaluation import metrics
from llmexp.evaluation.benchmarks import GenExample
from llmexp.evaluation.code_exec import score_code_samples, truncate_completion
from llmexp.models.generation import SamplingConfig, generate
from llmexp.tokenizer import Tokenizer

# A generated answer ends where the model starts a new example.
ANSWER_STOPS = ("\n\n", "\nQuestion:")


def last_number(text: str) -> str:
    """The last number in a text, commas and a trailing period removed (GSM8K's flexible answer extraction)."""
    found = re.findall(r"-?[\d,]*\.?\d+", text)
    return found[-1].replace(",", "").rstrip(".") if found else text.strip()


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
    for start in range(0, len(prompts), batch_size):
        batch = [tokenizer.encode(p) or [tokenizer.eos_id] for p in prompts[start : start + batch_size]]
        outputs = generate(model, batch, sampling, tokenizer.eos_id, generator=generator)
        texts.extend(tokenizer.decode(ids) for ids in outputs)
    return texts


def fewshot_prefix(pool: Sequence[GenExample], num_fewshot: int) -> str:
    """The first k solved examples (prompt, space, first reference) followed by a blank line each."""
    return "".join(f"{ex.prompt} {ex.references[0]}\n\n" for ex in pool[:num_fewshot])


def evaluate_generation(
    model: nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[GenExample],
    max_new_tokens: int = 64,
    num_fewshot: int = 0,
    extract: Callable[[str], str] | None = None,
    batch_size: int = 8,
) -> dict[str, float]:
    """Greedy answers; exact_match on the extracted answer, BLEU/chrF/ROUGE on the answer text."""
    prefix = fewshot_prefix(examples, num_fewshot)
    scored = examples[num_fewshot:] if num_fewshot else examples
    if not scored:
        raise ValueError("no examples left to score after taking the few-shot examples")
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0)
    raw = generate_completions(model, tokenizer, [prefix + ex.prompt for ex in scored], sampling, batch_size)
    answers = [cut_at_stops(text).strip() for text in raw]
    refs = [ex.references for ex in scored]
    extracted = [extract(a) for a in answers] if extract else answers
    result = {
        "exact_match": metrics.exact_match(extracted, refs),
        "bleu": metrics.bleu(answers, refs),
        "chrf": metrics.chrf(answers, refs),
        "n": float(len(scored)),
    }
    result.update(metrics.rouge(answers, refs))
    return result


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
) -> dict[str, float]:
    """pass@k over HumanEval-style problems: greedy when one sample, else `n_samples` sampled completions each."""
    sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature if n_samples > 1 else 0.0)
    prompts = [ex.prompt for ex in examples for _ in range(n_samples)]
    completions = [truncate_completion(t) for t in generate_completions(model, tokenizer, prompts, sampling, seed=seed)]
    samples = [completions[i * n_samples : (i + 1) * n_samples] for i in range(len(examples))]
    problems = [{"prompt": ex.prompt, **ex.extra} for ex in examples]
    result = score_code_samples(problems, samples, list(ks), timeout_s, memory_mb)
    return {**result, "n": float(len(examples))}
