"""Reading documents from files of every supported format, Hugging Face datasets and the embedded corpus."""

import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from llmexp.errors import ConfigError, DataError
from llmexp.prepare.sources import FileSource, HFSource, Mixture, PydocsSource, as_sources

ROWS = [{"text": f"document number {i} says hello"} for i in range(5)]


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def read_all(source) -> tuple[list[str], Counter]:
    skipped: Counter = Counter()
    texts = [doc.text for unit in source.units() for doc in source.read(unit, skipped)]
    return texts, skipped


@pytest.fixture
def corpus_dir(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.jsonl").write_bytes(_jsonl(ROWS))
    (root / "b.jsonl.gz").write_bytes(gzip.compress(_jsonl(ROWS)))
    (root / "sub" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl(ROWS)))
    pq.write_table(pa.table({"text": [r["text"] for r in ROWS], "n": list(range(5))}), root / "d.parquet")
    (root / "sub" / "e.txt").write_text("first paragraph line\nstill first\n\nsecond paragraph\n")
    return root


def test_every_format_in_a_directory_is_read(corpus_dir):
    texts, skipped = read_all(FileSource([str(corpus_dir)], txt_unit="paragraph"))
    expected = [r["text"] for r in ROWS]
    assert sorted(texts) == sorted(expected * 4 + ["first paragraph line\nstill first\n", "second paragraph\n"])
    assert not skipped


def test_globs_recurse_and_units_are_stable(corpus_dir):
    source = FileSource([str(corpus_dir / "**" / "*.jsonl*")])
    keys = [u.key for u in source.units()]
    assert keys == ["a.jsonl", "b.jsonl.gz", "sub/c.jsonl.zst"]
    assert [u.uid for u in source.units()] == [u.uid for u in FileSource([str(corpus_dir / "**/*.jsonl*")]).units()]


def test_text_is_cut_into_chunks_at_line_ends(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("".join(f"line {i:03d}\n" for i in range(100)))
    texts, _ = read_all(FileSource([str(path)], chunk_chars=100))
    assert "".join(texts) == path.read_text()
    assert all(t.endswith("\n") for t in texts)
    assert all(100 <= len(t) < 109 for t in texts[:-1]) and len(texts[-1]) <= 108  # 9-byte lines, cut at >= 100
    whole, _ = read_all(FileSource([str(path)], chunk_chars=0))
    assert whole == [path.read_text()]


def test_bad_inputs_are_skipped_and_counted(tmp_path):
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" * 10)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "rows.jsonl").write_bytes(
        _jsonl(ROWS[:2])
        + b'{"text": "broken\n'
        + b'{"other": "no text field"}\n'
        + b'{"text": "bad \xff byte"}\n'
        + b'{"text": "   "}\n'
        + b'{"text": "'
        + b"x" * 5000
        + b'"}\n'
        + _jsonl(ROWS[2:3])
    )
    texts, skipped = read_all(FileSource([str(tmp_path)], max_line_bytes=1000))
    assert sorted(texts) == sorted(r["text"] for r in ROWS[:3])
    assert skipped == Counter(
        binary_file=1,
        empty_file=1,
        invalid_utf8=2,
        malformed_json=1,
        missing_text_field=1,
        empty_document=1,
        oversized_line=1,
    )


def test_a_truncated_archive_keeps_what_was_read(tmp_path):
    data = gzip.compress(_jsonl(ROWS * 200))
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    texts, skipped = read_all(FileSource([str(tmp_path / "cut.jsonl.gz")]))
    assert 0 < len(texts) < 1000 and skipped["unreadable_file"] == 1


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"source.paths: '.*nope/\*.jsonl' matches no file"):
        FileSource([str(tmp_path / "nope" / "*.jsonl")]).units()


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="txt_unit"):
        FileSource(["x"], txt_unit="sentence")
    with pytest.raises(ConfigError, match="weight"):
        FileSource(["x"], weight=0)
    with pytest.raises(ConfigError, match=r"source\.components is empty"):
        Mixture({})


@pytest.mark.parametrize("streaming", [False, True])
def test_hf_datasets_loader_on_local_files(tmp_path, streaming):
    files = []
    for i in range(2):
        path = tmp_path / f"part{i}.jsonl"
        path.write_bytes(_jsonl([{"text": f"file {i} row {j}", "id": j} for j in range(3)] + [{"text": None}]))
        files.append(str(path))
    source = HFSource("json", data_files=files, streaming=streaming, rows_per_unit=3, cache_dir=str(tmp_path / "hf"))
    texts, skipped = read_all(source)
    assert texts == [f"file {i} row {j}" for i in range(2) for j in range(3)]
    assert skipped == Counter(missing_text_field=2)
    assert len(source.units()) == (2 if streaming else 3)


def test_hf_source_names_a_missing_column(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(_jsonl(ROWS))
    with pytest.raises(DataError, match=r"source\.text_field=.body. is not a column"):
        HFSource("json", data_files=[str(path)], text_field="body", cache_dir=str(tmp_path / "hf")).units()


def test_embedded_corpus_is_one_unit():
    source = PydocsSource(include_docstrings=False)
    texts, skipped = read_all(source)
    assert len(source.units()) == 1 and len(texts) > 50 and not skipped
    assert any("for" in t and "statement" in t for t in texts)


def test_mixture_takes_labels_from_its_keys(tmp_path):
    mixture = Mixture({"code": FileSource(["a"]), "prose": FileSource(["b"], weight=2.0)})
    assert [(s.label, s.weight) for s in as_sources(mixture)] == [("code", 1.0), ("prose", 2.0)]


def test_large_files_are_split_into_byte_ranges_without_losing_a_line(tmp_path):
    rows = [{"text": f"row {i} " + "x" * (i % 37)} for i in range(200)]
    (tmp_path / "big.jsonl").write_bytes(_jsonl(rows))
    (tmp_path / "big.txt").write_text("".join(f"line {i} " + "y" * (i % 23) + "\n" for i in range(300)))

    def documents(unit_bytes: int) -> tuple[list, int]:
        source = FileSource([str(tmp_path)], unit_bytes=unit_bytes, chunk_chars=50)
        skipped: Counter = Counter()
        docs = [(d.doc_id, d.text) for u in source.units() for d in source.read(u, skipped)]
        return docs, len(source.units())

    whole, n_whole = documents(1 << 30)
    parts, n_parts = documents(700)
    assert n_whole == 2 and n_parts > 10
    assert [d for d in parts if ".jsonl" in d[0]] == [d for d in whole if ".jsonl" in d[0]]
    text = (tmp_path / "big.txt").read_text()
    assert "".join(t for i, t in parts if ".txt" in i) == "".join(t for i, t in whole if ".txt" in i) == text
