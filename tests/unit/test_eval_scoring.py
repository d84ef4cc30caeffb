"""Log-likelihood scoring, perplexity/bpb and multiple-choice accuracy against direct computations on a tiny model."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llmexp.evaluation.benchmarks import MCExample
from llmexp.evaluation.multiple_choice import evaluate_multiple_choice
from llmexp.evaluation.scoring import LogLikelihoodScorer, text_perplexity
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.load(ASSETS / "tokenizer.json")


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=96).build().eval()


@torch.no_grad()
def direct_loglikelihood(model, context: list[int], continuation: list[int]) -> float:
    """Reference: one unbatched forward over context+continuation, summing the continuation's log-probabilities."""
    ids = torch.tensor([context + continuation])
    logprobs = F.log_softmax(model(ids[:, :-1]).double(), dim=-1)[0]
    positions = range(len(context) - 1, len(context) + len(continuation) - 1)
    return sum(float(logprobs[p, t]) for p, t in zip(positions, continuation, strict=True))


def test_encode_pair_moves_trailing_space_to_the_continuation(tokenizer, model):
    scorer = LogLikelihoodScorer(model, tokenizer)
    context, continuation = scorer.encode_pair("Question: x\nAnswer: ", "yes")
    assert context == tokenizer.encode("Question: x\nAnswer:")
    assert tokenizer.decode(continuation) == " yes"


def test_batched_loglikelihood_equals_direct_computation(tokenizer, model):
    scorer = LogLikelihoodScorer(model, tokenizer, batch_size=3)
    requests = [("The cat", " sat"), ("A much longer context here", " on the mat"), ("x", " y"), ("", "hello")]
    got = scorer.loglikelihood(requests)
    for (context, continuation), (ll, _) in zip(requests, got, strict=True):
        ctx_ids, cont_ids = scorer.encode_pair(context, continuation)
        assert ll == pytest.approx(direct_loglikelihood(model, ctx_ids, cont_ids), abs=1e-4)


def test_is_greedy_is_true_for_the_argmax_continuation(tokenizer, model):
    scorer = LogLikelihoodScorer(model, tokenizer)
    context = tokenizer.encode("def f(")
    best = int(model(torch.tensor([context]))[0, -1].argmax())
    worst = int(model(torch.tensor([context]))[0, -1].argmin())
    (_, greedy), (_, not_greedy) = scorer.loglikelihood_tokens([(context, [best]), (context, [worst])])
    assert greedy and not not_greedy


def test_long_inputs_keep_the_last_max_length_tokens(tokenizer, model):
    scorer = LogLikelihoodScorer(model, tokenizer)
    context, continuation = list(range(5, 125)), [7, 8, 9]
    kept = (context + continuation)[-(model.config.max_seq_len + 1) :]
    reference = direct_loglikelihood(model, kept[:-3], kept[-3:])
    ((ll, _),) = scorer.loglikelihood_tokens([(context, continuation)])
    assert ll == pytest.approx(reference, abs=1e-4)


@torch.no_grad()
def test_text_perplexity_and_bpb_equal_direct_cross_entropy(tokenizer, model):
    texts = ["def add(a, b): return a + b", "The for loop."]
    stream = [t for text in texts for t in [*tokenizer.encode(text), tokenizer.eos_id]]
    assert len(stream) < model.config.max_seq_len  # one window: the reference is a single forward pass
    ids = torch.tensor([stream])
    per_token = F.cross_entropy(model(ids[:, :-1])[0].double(), ids[0, 1:], reduction="none")
    nbytes = torch.from_numpy(tokenizer.token_bytes())[ids[0, 1:]].double()
    got = text_perplexity(model, tokenizer, texts)
    assert got["ppl"] == pytest.approx(math.exp(per_token.mean().item()), rel=1e-4)
    assert got["bpb"] == pytest.approx(float((per_token * (nbytes > 0)).sum() / (math.log(2) * nbytes.sum())), rel=1e-4)


@torch.no_grad()
def test_text_perplexity_covers_every_token_across_windows(tokenizer, model):
    """Windows overlap by one token, so the mean loss over many windows equals a per-window reference."""
    text = "abcdefghij" * 20
    stream = [*tokenizer.encode(text), tokenizer.eos_id]
    length = model.config.max_seq_len
    losses = []
    for start in range(0, len(stream) - 1, length):
        window = torch.tensor([stream[start : start + length + 1]])
        if window.shape[1] >= 2:
            losses.append(F.cross_entropy(model(window[:, :-1])[0].double(), window[0, 1:], reduction="none"))
    reference = math.exp(torch.cat(losses).mean().item())
    assert text_perplexity(model, tokenizer, [text])["ppl"] == pytest.approx(reference, rel=1e-4)


def test_multiple_choice_accuracy_equals_per_item_argmax(tokenizer, model):
    examples = [
        MCExample("Question: 1+1?\nAnswer:", ["2", "three", "eleven"], 0),
        MCExample("Question: sky?\nAnswer:", ["blue", "green"], 1),
        MCExample("Question: cat says?\nAnswer:", ["meow", "woof woof", "moo"], 2),
        MCExample("Pick one:", ["a", "bb"], 0),
    ]
    scorer = LogLikelihoodScorer(model, tokenizer)
    acc = acc_norm = 0.0
    for ex in examples:
        lls = [direct_loglikelihood(model, *scorer.encode_pair(ex.query, " " + c)) for c in ex.choices]
        acc += max(range(len(lls)), key=lambda i: (lls[i], -i)) == ex.gold
        normed = [ll / len(c) for ll, c in zip(lls, ex.choices, strict=True)]
        acc_norm += max(range(len(lls)), key=lambda i: (normed[i], -i)) == ex.gold
    got = evaluate_multiple_choice(scorer, examples)
    assert got.scores["acc"] == pytest.approx(acc / len(examples))
    assert got.scores["acc_norm"] == pytest.approx(acc_norm / len(examples))
    assert got.scores["n"] == 4
    # One record per item: its prompt, every choice's log-likelihood, the prediction and whether it was right.
    record = got.samples[2]
    assert record["prompt"] == "Question: cat says?\nAnswer:" and record["choices"] == ["meow", "woof woof", "moo"]
    assert record["loglikelihoods"] == pytest.approx(
        [direct_loglikelihood(model, *scorer.encode_pair(record["prompt"], " " + c)) for c in record["choices"]],
        abs=1e-4,
    )
    assert record["acc"] == float(record["pred"] == 2)


def test_generation_task_scores_the_answer_cut_at_the_next_example(tokenizer, model):
    from llmexp.evaluation import metrics
    from llmexp.evaluation.benchmarks import GenExample
    from llmexp.evaluation.generation_eval import cut_at_stops, evaluate_generation, generate_completions
    from llmexp.models.generation import SamplingConfig

    prompts = [f"Question: what is {i}?\nAnswer:" for i in range(4)]
    raw = generate_completions(model, tokenizer, prompts, SamplingConfig(max_new_tokens=12, temperature=0.0))
    answers = [cut_at_stops(text).strip() for text in raw]
    assert all(answers)  # the tiny model says something for each prompt
    # References: the model's own answer for two prompts, an answer it does not give for the other two.
    examples = [
        GenExample(p, [a if i % 2 == 0 else "zebra"]) for i, (p, a) in enumerate(zip(prompts, answers, strict=True))
    ]
    got = evaluate_generation(model, tokenizer, examples, max_new_tokens=12)
    assert got.scores["exact_match"] == 0.5 and got.scores["n"] == 4
    assert 0 < got.scores["chrf"] < 100  # half the answers match character for character
    assert got.scores["f1"] == pytest.approx(sum(metrics.token_f1(answers, [e.references for e in examples])) / 4)
    assert [s["exact_match"] for s in got.samples] == [1.0, 0.0, 1.0, 0.0]
    assert got.samples[1]["answer"] == answers[1] and got.samples[1]["references"] == ["zebra"]
