"""Benchmark decontamination and the data card: overlaps found per benchmark (and dropped on request), tokenizer
fertility per source, and why documents were dropped, with examples."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

from test_prepare import _preparation, prose, write_jsonl

from llmexp.data.shards import load_prepared
from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.decontam import DecontamConfig
from llmexp.prepare.pipeline import Preparation
from llmexp.prepare.sources import FileSource, Mixture


def preparation(source, out: Path, decontam: DecontamConfig | None = None, **clean) -> Preparation:
    """No document filter but those given; every document in the train split."""
    filters = CleanConfig(min_words=clean.pop("min_words", None), max_duplicate_ngram_char_fraction=None, **clean)
    return _preparation(source, out, clean=filters, decontam=decontam, val_fraction=0.0)


def all_texts(out: Path) -> list[str]:
    data = load_prepared(out)
    tokenizer, texts = data.tokenizer(), []
    for i, shard in enumerate(data.shards("train")):
        offsets = data.document_offsets("train", i)
        texts += [tokenizer.decode(shard[a : b - 1]) for a, b in itertools.pairwise(offsets)]
    return texts


def test_benchmark_overlap_is_reported_per_benchmark_and_dropped_on_request(tmp_path):
    rng = random.Random(5)
    bench = tmp_path / "benchmarks"
    (bench / "arc").mkdir(parents=True)
    questions = [prose(rng, 30) for _ in range(4)]
    (bench / "gsm8k_test.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": "#### 4"}) + "\n" for q in questions)
    )
    stem, choice = prose(rng, 8), prose(rng, 8)  # 16 words only together: a row's strings count as one text
    arc = {"id": "x", "question": {"stem": stem, "choices": [{"text": choice, "label": "A"}]}}
    (bench / "arc" / "ARC-Easy-Test.jsonl").write_text(json.dumps(arc) + "\n")
    (bench / "arc" / "labels.lst").write_text("0\n")
    docs = [prose(rng, 60) for _ in range(30)]
    planted = [f"{docs[0]} {questions[1]} {docs[1]}", f"Q: {questions[2]}", f"{docs[2]} {stem} {choice}"]
    short = " ".join(questions[3].split()[:10])  # 10 shared words: below the 13-gram
    (tmp_path / "c").mkdir()
    write_jsonl(tmp_path / "c" / "docs.jsonl", docs[3:] + planted + [f"{prose(rng, 60)} {short}"])

    found = preparation(
        FileSource([str(tmp_path / "c")]), tmp_path / "a", DecontamConfig(benchmarks_dir=str(bench))
    ).run()
    report = found["counts"]["decontamination"]
    assert {name: b["documents_hit"] for name, b in report["benchmarks"].items()} == {"arc": 1, "gsm8k_test": 2}
    assert report["dropped"] == 0 and found["splits"]["train"]["documents"] == 31
    assert [q.split(": ", 1)[1][:30] for q in report["benchmarks"]["gsm8k_test"]["examples"]] == [
        planted[0][:30],
        planted[1][:30],
    ]
    assert "| gsm8k_test | 1 | 4 |" in (tmp_path / "a" / "DATACARD.md").read_text()

    dropped = preparation(
        FileSource([str(tmp_path / "c")]), tmp_path / "b", DecontamConfig(benchmarks_dir=str(bench), drop=True)
    ).run()
    assert dropped["counts"]["decontamination"]["dropped"] == 3 and dropped["splits"]["train"]["documents"] == 28
    texts = all_texts(tmp_path / "b")
    assert not any(questions[1] in t or questions[2] in t or stem in t for t in texts)
    assert any(short in t for t in texts)


def test_datacard_reports_fertility_per_source_and_why_documents_were_dropped(tmp_path):
    rng = random.Random(6)
    for name in ("prose", "code"):
        (tmp_path / name).mkdir()
    docs = [prose(rng, 80) for _ in range(20)]
    write_jsonl(tmp_path / "prose" / "d.jsonl", docs + docs[:2] + ["Too short to keep."])
    code = [f"def f{i}(x):\n    return x * {i} + {i + 1}\n" * 8 for i in range(10)]
    write_jsonl(tmp_path / "code" / "d.jsonl", code)
    mixture = Mixture({"prose": FileSource([str(tmp_path / "prose")]), "code": FileSource([str(tmp_path / "code")])})
    manifest = preparation(
        mixture,
        tmp_path / "out",
        min_words=5,
        max_duplicate_line_fraction=None,
        max_duplicate_line_char_fraction=None,
        max_top_ngram_char_fraction=None,
        min_alpha_word_fraction=None,
        max_symbol_ratio=None,
        min_stop_words=None,
        min_mean_word_length=None,
    ).run()
    fertility = manifest["fertility"]
    assert fertility["prose"]["documents"] == 20 and fertility["code"]["documents"] == 10
    for f in fertility.values():
        assert f["chars_per_token"] == round(f["chars"] / f["tokens"], 3) > 1 and f["bytes"] >= f["chars"]
    assert manifest["examples"]["filtered"] == {
        "min_words": ["prose:d.jsonl:" + _offset(tmp_path) + ": Too short to keep."]
    }
    assert len(manifest["examples"]["dedup"]["exact"]) == 2
    card = (tmp_path / "out" / "DATACARD.md").read_text()
    assert "## Tokenizer fertility" in card and re.search(
        r"\| prose \| 20 \| [\d,]+ \| [\d,]+ \| [\d,]+ \| [\d.]+ \|", card
    )
    assert "- `min_words`, for example:" in card and "Too short to keep." in card
    assert "(a copy of prose:d.jsonl:0)" in card
    assert "- `phone`: numbers that libphonenumber finds valid" in card


def test_gsm8k_questions_planted_in_a_real_book_are_found_among_real_benchmarks(shared_data, tmp_path):
    book = (shared_data / "gutenberg_war_and_peace.txt").read_text(encoding="utf-8")[:600_000]
    paragraphs = [p for p in re.split(r"\n\s*\n", book) if len(p.split()) > 40][:200]
    rows = [json.loads(line) for line in (shared_data / "gsm8k_test.jsonl").open(encoding="utf-8")]
    questions = [r["question"] for r in rows if len(r["question"].split()) > 25][:3]
    planted = [f"{p} {q}" for p, q in zip(paragraphs[-3:], questions, strict=True)]
    (tmp_path / "c").mkdir()
    write_jsonl(tmp_path / "c" / "book.jsonl", paragraphs[:-3] + planted)
    names = ["gsm8k_test.jsonl", "arc_easy_test_genmc.jsonl", "humaneval_HumanEval.jsonl.gz", "truthfulqa_817.csv"]
    decontam = DecontamConfig(files=[str(shared_data / n) for n in names] + [str(shared_data / "piqa" / "valid.jsonl")])
    report = preparation(FileSource([str(tmp_path / "c")]), tmp_path / "out", decontam).run()["counts"][
        "decontamination"
    ]
    hits = {name: b["documents_hit"] for name, b in report["benchmarks"].items()}
    assert hits == {
        "arc_easy_test_genmc": 0,
        "gsm8k_test": 3,
        "humaneval_HumanEval": 0,
        "truthfulqa_817": 0,
        "valid": 0,
    }
    assert all(b["rows"] > 150 and b["ngrams"] > 1000 for b in report["benchmarks"].values())


def _offset(tmp_path: Path) -> str:
    lines = (tmp_path / "prose" / "d.jsonl").read_bytes().splitlines(keepends=True)
    return str(sum(len(line) for line in lines[:-1]))
