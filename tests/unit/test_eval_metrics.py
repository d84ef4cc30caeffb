"""Each metric against a reference computation on known inputs."""

import itertools
import math
from collections import Counter

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from llmexp.evaluation import metrics
from llmexp.evaluation.code_exec import pass_at_k
from llmexp.evaluation.multiple_choice import choice_predictions


def test_token_accuracy_counts_argmax_hits_and_skips_ignored_positions():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    labels = torch.randint(0, 11, (3, 7))
    labels[0, :3] = -100
    keep = labels != -100
    reference = (logits.argmax(-1) == labels)[keep].float().mean().item()
    assert metrics.token_accuracy(logits, labels) == pytest.approx(reference)


def test_classification_metrics_match_sklearn():
    target = [0, 1, 2, 2, 1, 0, 2, 1, 1, 0]
    preds = [0, 2, 2, 2, 1, 1, 0, 1, 0, 0]
    got = metrics.classification_metrics(preds, target, num_classes=3)
    assert got["acc"] == pytest.approx(accuracy_score(target, preds))
    assert got["precision"] == pytest.approx(precision_score(target, preds, average="macro"))
    assert got["recall"] == pytest.approx(recall_score(target, preds, average="macro"))
    assert got["f1"] == pytest.approx(f1_score(target, preds, average="macro"))


def test_bleu_equals_the_definition_on_one_sentence():
    # 1..4-gram precisions 5/6, 3/5, 2/4, 1/3; same length, so no brevity penalty.
    reference = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(reference, abs=1e-6)


def test_bleu_takes_the_closest_of_several_references():
    assert metrics.bleu(["the cat sat on the mat"], [["a dog ran", "the cat sat on the mat"]]) == pytest.approx(100.0)


def _chrf_reference(hyps: list[str], refs: list[str], order: int = 6, beta: float = 2.0) -> float:
    """chrF from its definition (Popovic 2015, sacrebleu defaults): character n-grams without spaces, corpus counts,
    precision and recall averaged over the orders that occur, then F-beta."""
    precisions, recalls = [], []
    for n in range(1, order + 1):
        hyp_total = ref_total = matched = 0
        for hyp, ref in zip(hyps, refs, strict=True):
            grams = [
                Counter(s[i : i + n] for i in range(len(s) - n + 1))
                for s in (hyp.replace(" ", ""), ref.replace(" ", ""))
            ]
            hyp_total, ref_total = hyp_total + sum(grams[0].values()), ref_total + sum(grams[1].values())
            matched += sum((grams[0] & grams[1]).values())
        if hyp_total and ref_total:
            precisions.append(matched / hyp_total)
            recalls.append(matched / ref_total)
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    return 100 * (1 + beta**2) * p * r / (beta**2 * p + r)


def test_chrf_equals_the_definition():
    hyps = ["the quick brown fox jumps", "hello world"]
    refs = ["the quick brown fox jumped over", "hello there world"]
    assert metrics.chrf(hyps, refs) == pytest.approx(_chrf_reference(hyps, refs), abs=1e-6)


def test_rouge_equals_hand_counts():
    got = metrics.rouge(["the cat sat"], ["the cat sat on the mat"])
    # unigrams: P=3/3, R=3/6; bigrams: P=2/2, R=2/5; LCS=3 like unigrams.
    assert got["rouge1"] == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert got["rouge2"] == pytest.approx(2 * 1 * 0.4 / 1.4)
    assert got["rougeL"] == pytest.approx(2 / 3)


def test_exact_match_normalises_case_punctuation_and_articles():
    preds = ["The Answer.", "42", "paris", "no"]
    refs = ["answer", ["41", " 42 "], "Paris!", "yes"]
    assert metrics.exact_match(preds, refs) == pytest.approx(3 / 4)
    assert metrics.exact_match(preds, refs, normalize=False) == pytest.approx(1 / 4)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 0, 1), (5, 2, 1), (5, 2, 3), (6, 3, 2), (4, 4, 2), (7, 1, 7)])
def test_pass_at_k_equals_enumeration_of_all_k_subsets(n, c, k):
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    reference = sum(any(s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(reference)


def test_pass_at_k_refuses_k_above_samples():
    with pytest.raises(ValueError, match="pass@3"):
        pass_at_k(2, 1, 3)


def test_acc_norm_divides_by_answer_characters_not_tokens():
    # Summed log-likelihood prefers the short answer; per character the long one is more likely.
    lls, choices = [-4.0, -6.0], ["ab", "abcdefgh"]
    assert choice_predictions(lls, choices) == (0, 1)


def test_ties_go_to_the_first_choice_like_numpy_argmax():
    assert choice_predictions([-1.0, -1.0], ["xy", "xy"]) == (0, 0)


def test_token_f1_equals_hand_counted_overlap():
    # "the cat sat down" vs "a cat sat": articles dropped -> [cat, sat, down] vs [cat, sat]: P=2/3, R=1, F1=0.8.
    assert metrics.token_f1(["The cat sat down."], ["a cat sat"]) == pytest.approx([0.8])
    # Best over references; no overlap scores 0; two empty answers agree.
    assert metrics.token_f1(["blue sky", "red", ""], [["green", "sky blue"], "blue", "the"]) == [1.0, 0.0, 1.0]
    # Repeated words count as often as both sides have them: [x, x, y] vs [x, y, y] -> 2 common, F1 = 2/3.
    assert metrics.token_f1(["x x y"], ["x y y"]) == pytest.approx([2 / 3])


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("\\boxed{2} then \\boxed{\\sqrt{x^{2}}}", "\\sqrt{x^{2}}"),  # the last box, nested braces kept
        ("\\boxed 7$", "7"),
        ("\\fbox{x = 3}", "3"),
        ("First 3 steps, so x = -4 meters", "-4"),  # no box: the last number
        ("It costs 1,250 dollars, i.e. $1250.", "1250"),
        ("\\boxed{\\left( 3, \\tfrac{1}{2} \\right)}", "(3,\\frac{1}{2})"),
        ("\\boxed{50\\%}", "50"),
        ("\\boxed{90^\\circ}", "90"),
        ("\\boxed{.5}", "0.5"),
        ("\\boxed{3/4}", "\\frac{3}{4}"),
        ("\\boxed{\\frac34}", "\\frac{3}{4}"),
        ("\\boxed{5.00}", "5"),
        ("\\boxed{12 \\text{ cm}}", "12"),
        ("no number here", "nonumberhere"),
    ],
)
def test_math_answer_extraction(text, answer):
    from llmexp.evaluation.answers import math_answer

    assert math_answer(text) == answer


def test_gsm8k_takes_the_last_number():
    from llmexp.evaluation.answers import last_number

    assert last_number("So she has 5 apples, then 1,234.") == "1234"
    assert last_number("-3.5 degrees") == "-3.5"
