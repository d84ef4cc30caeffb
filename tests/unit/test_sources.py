"""Reading documents from files of every supported format, Hugging Face datasets and the embedded corpus."""

import codecs
import gzip
import json
import tracemalloc
import zlib
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from llmexp.errors import ConfigError, DataError
from llmexp.prepare.sources import FileSource, HFSource, Mixture, PydocsSource, as_sources
from llmexp.prepare.streams import Skipped

ROWS = [{"text": f"document number {i} says hello"} for i in range(5)]


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def read_all(source) -> tuple[list[str], Counter]:
    skipped = Skipped()
    texts = [doc.text for unit in source.units() for doc in source.read(unit, skipped)]
    return texts, skipped.counts


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


def readable_prefix(data: bytes) -> bytes:
    """What zlib can decompress from the start of a cut gzip stream."""
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


@pytest.mark.parametrize("name", ["cut.jsonl.gz", "cut.txt.gz"])
def test_a_truncated_archive_keeps_everything_readable(tmp_path, name):
    rows = [{"text": f"row {i} " + "words " * (i % 50)} for i in range(3000)]
    whole = _jsonl(rows) if name.endswith(".jsonl.gz") else "".join(r["text"] + "\n" for r in rows).encode()
    data = gzip.compress(whole)
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    prefix = readable_prefix(data[: len(data) // 2])
    texts, skipped = read_all(FileSource([str(tmp_path / name)], chunk_chars=0))
    if name.endswith(".jsonl.gz"):
        complete = prefix[: prefix.rindex(b"\n") + 1]
        assert texts == [json.loads(line)["text"] for line in complete.splitlines()]
        assert skipped == Counter(truncated_file=1, malformed_json=1)  # the row cut in half
    else:
        assert texts == [prefix.decode()]  # one document per file: all of its readable text
        assert skipped == Counter(truncated_file=1)


def test_invalid_utf8_costs_only_its_line(tmp_path):
    lines = [f"line {i} of a long chunk of text\n".encode() for i in range(400)]
    lines[200] = b"caf\xe9 au lait\n"
    (tmp_path / "mixed.txt").write_bytes(b"".join(lines))
    texts, skipped = read_all(FileSource([str(tmp_path)], chunk_chars=20000))
    assert "".join(texts) == b"".join(lines[:200] + lines[201:]).decode()
    assert skipped == Counter(invalid_utf8=1)
    texts, skipped = read_all(FileSource([str(tmp_path)], decode_errors="replace"))
    assert "".join(texts) == b"".join(lines).decode("utf-8", errors="replace") and "caf\ufffd au" in texts[0]
    assert skipped == Counter(replaced_characters=1)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_read(tmp_path, encoding):
    text = "".join(f"ligne {i}: déjà vu, 東京 {i}\n" for i in range(300))
    bom = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-32-be": codecs.BOM_UTF32_BE}.get(encoding, b"")
    (tmp_path / "wide.txt").write_bytes(bom + text.encode(encoding))
    (tmp_path / "wide.jsonl").write_bytes(bom + _jsonl(ROWS).decode().encode(encoding))
    source = FileSource([str(tmp_path)], chunk_chars=1000, unit_bytes=100)  # too small a unit: read whole anyway
    texts, skipped = read_all(source)
    assert "".join(t for t in texts if t.startswith("ligne")) == text
    assert [t for t in texts if t.startswith("document")] == [r["text"] for r in ROWS]
    assert not skipped and len(source.units()) == 2


def test_a_json_file_is_read_as_an_array(tmp_path):
    rows = [*ROWS[:2], {"text": "x" * 5000}, "not a row", {"body": "no text"}, *ROWS[2:]]
    (tmp_path / "rows.json").write_text(json.dumps(rows, indent=2))
    (tmp_path / "lines.json").write_bytes(_jsonl(ROWS[:2]))  # rows one per line under .json still work
    texts, skipped = read_all(FileSource([str(tmp_path)], max_line_bytes=1000))
    assert texts == [r["text"] for r in ROWS[:2]] + [r["text"] for r in ROWS]
    assert skipped == Counter(oversized_line=1, missing_text_field=2)


def test_a_malformed_array_item_costs_only_itself_at_any_chunk_size(tmp_path, monkeypatch):
    import llmexp.prepare.json_arrays as json_arrays

    (tmp_path / "rows.json").write_text('[{"text": "a \\"q\\" ]}"}, {"text": bad}, {"text": "c"}, 7]')
    for chunk in (1 << 20, 3):
        monkeypatch.setattr(json_arrays, "READ_CHUNK", chunk)
        texts, skipped = read_all(FileSource([str(tmp_path)]))
        assert texts == ['a "q" ]}', "c"] and skipped == Counter(malformed_json=1, missing_text_field=1)


def test_a_missing_text_field_is_named_with_the_fields_a_row_has(tmp_path):
    (tmp_path / "alpaca.json").write_text(json.dumps([{"instruction": "i", "input": "", "output": "o"}] * 3))
    source = FileSource([str(tmp_path)])
    skipped = Skipped()
    assert not [d for u in source.units() for d in source.read(u, skipped)]
    assert skipped.counts == Counter(missing_text_field=3)
    assert skipped.examples["missing_text_field"] == (
        "source.text_field='text' not in a row (its fields: instruction, input, output)"
    )


def test_max_line_bytes_holds_inside_split_parts(tmp_path):
    """A 20 MB line crossing several parts of a split file is never held whole (peak memory stays near the cap)."""
    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        handle.write(_jsonl(ROWS[:2]) + b'{"text": "' + b"y" * (20 << 20) + b'"}\n' + _jsonl(ROWS[2:]))
    source = FileSource([str(path)], max_line_bytes=1 << 20, unit_bytes=4 << 20)
    tracemalloc.start()
    try:
        texts, skipped = read_all(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert texts == [r["text"] for r in ROWS] and skipped == Counter(oversized_line=1)
    assert len(source.units()) == 6 and peak < 8 << 20, peak


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
        skipped = Skipped()
        docs = [(d.doc_id, d.text) for u in source.units() for d in source.read(u, skipped)]
        return docs, len(source.units())

    whole, n_whole = documents(1 << 30)
    parts, n_parts = documents(700)
    assert n_whole == 2 and n_parts > 10
    assert [d for d in parts if ".jsonl" in d[0]] == [d for d in whole if ".jsonl" in d[0]]
    text = (tmp_path / "big.txt").read_text()
    assert "".join(t for i, t in parts if ".txt" in i) == "".join(t for i, t in whole if ".txt" in i) == text
