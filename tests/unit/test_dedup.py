"""Exact and near-duplicate removal on planted corpora: precision and recall are measured and reported."""

import random

import numpy as np
import pytest

from llmexp.errors import ConfigError
from llmexp.prepare.clusters import find_duplicates, first_of_group
from llmexp.prepare.dedup import DedupConfig, NearDedupConfig, lsh_params, shingle_hashes


def planted_corpus(seed: int = 0, n_docs: int = 400, n_near: int = 150, n_exact: int = 100):
    """(text, label, original index) in corpus order: distinct originals first, then exact copies (reflowed,
    re-cased) and near copies (1-3 word substitutions, insertions or deletions in 120-180 words), shuffled."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    originals = [" ".join(rng.choice(vocab) for _ in range(rng.randint(120, 180))) for _ in range(n_docs)]

    def near(text: str) -> str:
        words = text.split()
        for _ in range(rng.randint(1, 3)):
            i, op = rng.randrange(len(words)), rng.random()
            if op < 1 / 3:
                words[i] = rng.choice(vocab)
            elif op < 2 / 3:
                words.insert(i, rng.choice(vocab))
            else:
                del words[i]
        return " ".join(words)

    def exact(text: str) -> str:
        words = text.split()
        return "\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)).upper()

    copies = [(near(originals[i]), "near", i) for i in rng.sample(range(n_docs), n_near)]
    copies += [(exact(originals[i]), "exact", i) for i in rng.sample(range(n_docs), n_exact)]
    rng.shuffle(copies)
    return [(t, "original", i) for i, t in enumerate(originals)] + copies


def true_jaccard(a: str, b: str, size: int = 5) -> float:
    sa, sb = set(shingle_hashes(a, size).tolist()), set(shingle_hashes(b, size).tolist())
    return len(sa & sb) / len(sa | sb)


def run(cfg: DedupConfig, docs):
    return find_duplicates([d[0] for d in docs], cfg)


def scores(docs, verdicts) -> tuple[float, dict[float, tuple[float, int]]]:
    """(precision: removed documents that are planted copies; recall of near copies whose true Jaccard similarity
    to their original is at least 0.8 / 0.85, with how many there are)."""
    removed = [v is not None for v in verdicts]
    planted = [label != "original" for _, label, _ in docs]
    precision = sum(r and p for r, p in zip(removed, planted, strict=True)) / max(1, sum(removed))
    near = [
        (v, true_jaccard(t, docs[i][0])) for (t, label, i), v in zip(docs, verdicts, strict=True) if label == "near"
    ]
    recall = {}
    for low in (0.8, 0.85):
        above = [v for v, j in near if j >= low]
        recall[low] = (sum(v == "near" for v in above) / len(above), len(above))
    return precision, recall


def test_planted_corpus_precision_and_recall(record_property):
    """Every exact copy goes; near copies (1-3 edits) go when their true similarity reaches the threshold."""
    docs = planted_corpus()
    verdicts = run(DedupConfig(near=NearDedupConfig(threshold=0.8)), docs)
    precision, recall = scores(docs, verdicts)
    record_property("near_dup_precision", precision)
    record_property("near_dup_recall", recall[0.8][0])
    print(f"\nplanted corpus ({len(docs)} docs): precision {precision:.3f}; recall {recall}")
    assert all(v == "exact" for v, (_, label, _) in zip(verdicts, docs, strict=True) if label == "exact")
    assert precision >= 0.99 and recall[0.8][0] >= 0.95 and recall[0.85][0] >= 0.99


def near_threshold_corpus(seed: int = 1, n_docs: int = 300):
    """Originals and one copy of each with 2-6 substituted words: true 5-gram Jaccard mostly between 0.7 and 0.93,
    so many copies sit just above and just below the 0.8 threshold, where an estimate alone errs both ways."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]
    originals = [" ".join(rng.choice(vocab) for _ in range(rng.randint(150, 250))) for _ in range(n_docs)]
    copies = []
    for i, text in enumerate(originals):
        words = text.split()
        for pos in rng.sample(range(len(words)), rng.randint(2, 6)):
            words[pos] = rng.choice(vocab)
        copies.append((" ".join(words), "near", i))
    return [(t, "original", i) for i, t in enumerate(originals)] + copies


def test_near_duplicate_recall_and_precision_at_the_threshold(record_property):
    docs = near_threshold_corpus()
    verdicts = run(DedupConfig(near=NearDedupConfig(threshold=0.8)), docs)
    jaccards = [true_jaccard(t, docs[i][0]) for t, label, i in docs if label == "near"]
    removed = [v is not None for v in verdicts]
    copies = [(r, j) for r, j in zip(removed[len(jaccards) :], jaccards, strict=True)]
    above = [r for r, j in copies if j >= 0.8]
    recall = sum(above) / len(above)
    precision = sum(r and j >= 0.8 for r, j in copies) / max(1, sum(removed))
    record_property("near_dup_recall_at_threshold", recall)
    print(
        f"\n{len(above)} copies with J >= 0.8 ({sum(0.8 <= j < 0.85 for j in jaccards)} below 0.85): recall "
        f"{recall:.3f}, precision {precision:.3f}"
    )
    assert sum(0.8 <= j < 0.85 for j in jaccards) >= 40 and sum(j < 0.8 for j in jaccards) >= 40
    assert not any(removed[: len(jaccards)]), "an original was removed"
    assert recall >= 0.95 and precision >= 0.99


def test_banding_is_chosen_for_the_threshold():
    assert lsh_params(0.8, 128) == (21, 6)  # P(candidate | J = 0.8) = 1 - (1 - 0.8**6)**21 = 0.998
    bands, rows = lsh_params(0.5, 256)
    assert 1 - (1 - 0.5**rows) ** bands >= 0.99 and 1 - (1 - 0.5 ** (rows + 1)) ** (256 // (rows + 1)) < 0.99


def test_groups_keep_their_first_member():
    # 0-1-2 chained, 3 alone, 4-5
    label = first_of_group(6, np.array([1, 2, 5]), np.array([2, 0, 4]))
    assert label.tolist() == [0, 0, 0, 3, 4, 4]


def test_threshold_decides_what_counts_as_near():
    rng = np.random.default_rng(0)
    base = " ".join(f"w{i}" for i in rng.integers(0, 10**6, 200))
    words = base.split()
    half = " ".join(words[:100] + [f"x{i}" for i in range(100)])  # shares ~1/3 of the shingles
    strict = DedupConfig(near=NearDedupConfig(threshold=0.9))
    loose = DedupConfig(near=NearDedupConfig(threshold=0.3, bands=32, rows=4))
    assert run(strict, [(base,), (half,)]) == [None, None]
    assert run(loose, [(base,), (half,)]) == [None, "near"]
    assert loose.bands_rows == (32, 4)


def test_exact_only_and_disabled():
    docs = [("Same text here",), ("same   TEXT here",), ("Same text there",)]
    assert run(DedupConfig(near={"enabled": False}), docs) == [None, "exact", None]
    assert run(DedupConfig(exact=False, near={"enabled": False}), docs) == [None, None, None]


def test_shingles_are_a_set_of_word_ngrams():
    assert len(shingle_hashes("a b c d e f", 5)) == 2
    assert len(shingle_hashes("a b", 5)) == 1 and len(shingle_hashes("", 5)) == 0
    assert np.array_equal(shingle_hashes("A b, c d e!", 5), shingle_hashes("a b c d e", 5))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="threshold"):
        NearDedupConfig(threshold=1.5)
    with pytest.raises(ConfigError, match="set together"):
        NearDedupConfig(bands=4)
    with pytest.raises(ConfigError, match="exceeds num_perm"):
        NearDedupConfig(bands=20, rows=10)
