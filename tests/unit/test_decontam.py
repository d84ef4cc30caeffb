"""Benchmark decontamination pieces: which files count as benchmarks, and the word n-grams compared."""

import pytest

from llmexp.errors import ConfigError
from llmexp.prepare.decontam import DecontamConfig, benchmark_rows, ngram_hashes


def test_benchmarks_are_the_data_files_under_the_folder_named_by_their_top_entry(tmp_path):
    (tmp_path / "piqa").mkdir()
    (tmp_path / "mmlu" / "test").mkdir(parents=True)
    for name in (
        "gsm8k_test.jsonl",
        "piqa/valid.jsonl",
        "piqa/valid-labels.lst",
        "mmlu/test/a_test.csv",
        "mmlu/test/b_test.csv",
        "HumanEval.jsonl.gz",
        "notes.md",
    ):
        (tmp_path / name).write_text("x")
    extra = tmp_path / "mine.parquet"
    found = DecontamConfig(benchmarks_dir=str(tmp_path / "."), files=[str(tmp_path / "gsm8k_test.jsonl")]).benchmarks()
    assert {k: [p.name for p in v] for k, v in found.items()} == {
        "HumanEval": ["HumanEval.jsonl.gz"],
        "gsm8k_test": ["gsm8k_test.jsonl", "gsm8k_test.jsonl"],
        "mmlu": ["a_test.csv", "b_test.csv"],
        "piqa": ["valid.jsonl"],
    }
    assert DecontamConfig(benchmarks_dir=str(tmp_path / "absent")).benchmarks() == {}
    with pytest.raises(ConfigError, match=r"decontam\.files: no such file"):
        DecontamConfig(files=[str(extra)])


def test_every_string_of_a_row_is_read(tmp_path):
    (tmp_path / "a.csv").write_text("What is two plus two?,3,4,5,B\n")
    (tmp_path / "b.json").write_text('[{"q": {"stem": "s", "choices": [{"text": "t"}]}}]')
    assert list(benchmark_rows(tmp_path / "a.csv")) == [["What is two plus two?", "3", "4", "5", "B"]]
    assert list(benchmark_rows(tmp_path / "b.json")) == [{"q": {"stem": "s", "choices": [{"text": "t"}]}}]


def test_ngrams_are_lower_cased_word_13_grams():
    words = [f"word{i}" for i in range(13)]
    assert len(ngram_hashes(" ".join(words), 13)) == 1 and len(ngram_hashes(" ".join(words[:12]), 13)) == 0
    assert (ngram_hashes(" ".join(words).upper() + "!", 13) == ngram_hashes(", ".join(words), 13)).all()
    assert len(ngram_hashes(" ".join([*words, "x"]), 13)) == 2
