"""Documents out of local files (.txt, .jsonl, .parquet; .gz/.zst compressed), with bad input skipped and counted.

Nothing here raises on bad content: a binary file, an empty file, invalid UTF-8, a line too long to hold, a malformed
jsonl row or an unreadable parquet file each add one to a named counter in `skipped` and reading goes on. The caller
reports the counters (the prepare manifest does).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from llmexp.data.corpus import Document

log = logging.getLogger(__name__)

SNIFF_BYTES = 8192
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TXT_UNITS = ("chunk", "paragraph")
# What a corrupt or truncated file raises while being read (pyarrow's ArrowInvalid is a ValueError).
READ_ERRORS = (OSError, EOFError, ValueError, zstandard.ZstdError)


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, decompressed for .gz and .zst."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.suffix == ".zst":
        return io.BufferedReader(zstandard.open(path, "rb"))
    return path.open("rb")


def splittable(path: Path) -> bool:
    """Whether a file can be read in byte ranges (uncompressed text or jsonl: lines can be found from any offset)."""
    return path.suffix not in (".gz", ".zst") and file_format(path) != "parquet"


def file_format(path: Path) -> str:
    """'jsonl', 'parquet' or 'txt' (anything else is read as text; binary files are caught by sniffing)."""
    name = path.name.lower()
    for suffix in (".gz", ".zst"):
        name = name.removesuffix(suffix)
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "txt"


def sniff(path: Path, skipped: Counter) -> bool:
    """False (and counted) for empty files, binary files (a NUL byte in the first 8 KiB) and unreadable ones."""
    try:
        with open_binary(path) as handle:
            head = handle.read(SNIFF_BYTES)
    except READ_ERRORS as err:
        log.warning("skipping unreadable file %s: %s", path, err)
        skipped["unreadable_file"] += 1
        return False
    if not head:
        skipped["empty_file"] += 1
        return False
    if b"\x00" in head:
        skipped["binary_file"] += 1
        return False
    return True


def bounded_lines(
    handle: BinaryIO, max_bytes: int, skipped: Counter, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of the lines that start in [start, end), with a cap on memory: a line longer than
    max_bytes is drained in pieces and counted. A range that starts mid-line leaves that line to the range before."""
    if start > 0:
        handle.seek(start - 1)
        if handle.read(1) != b"\n":
            handle.readline()
    offset = handle.tell()
    while end is None or offset < end:
        line = handle.readline(max_bytes + 1)
        if not line:
            return
        here = offset
        offset += len(line)
        if len(line) > max_bytes and not line.endswith(b"\n"):
            skipped["oversized_line"] += 1
            while line and not line.endswith(b"\n"):
                line = handle.readline(1 << 20)
                offset += len(line)
            continue
        yield here, line


def _decode(data: bytes, skipped: Counter) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        skipped["invalid_utf8"] += 1
        return None


def text_documents(
    path: Path,
    doc_prefix: str,
    unit: str,
    chunk_chars: int,
    max_line_bytes: int,
    skipped: Counter,
    byte_range: tuple[int, int | None] = (0, None),
) -> Iterator[Document]:
    """A text file cut at line boundaries into documents: about `chunk_chars` each ('chunk'; 0 = the whole file) or
    one per blank-line-separated paragraph ('paragraph'). A document with invalid UTF-8 is skipped whole."""
    lines: list[bytes] = []
    size, first = 0, 0

    def flush() -> Iterator[Document]:
        text = _decode(b"".join(lines), skipped)
        if text is not None and text.strip():
            yield Document(f"{doc_prefix}:{first}", text)

    with open_binary(path) as handle:
        for offset, line in bounded_lines(handle, max_line_bytes, skipped, *byte_range):
            if not lines:
                first = offset
            blank = not line.strip()
            if unit == "paragraph" and blank:
                if lines:
                    yield from flush()
                lines, size = [], 0
                continue
            lines.append(line)
            size += len(line)
            if unit == "chunk" and chunk_chars and size >= chunk_chars:
                yield from flush()
                lines, size = [], 0
        if lines:
            yield from flush()


def jsonl_documents(
    path: Path,
    doc_prefix: str,
    text_field: str,
    max_line_bytes: int,
    skipped: Counter,
    byte_range: tuple[int, int | None] = (0, None),
) -> Iterator[Document]:
    """One document per row's `text_field`; malformed rows, rows without the field and empty texts are counted."""
    with open_binary(path) as handle:
        for offset, line in bounded_lines(handle, max_line_bytes, skipped, *byte_range):
            if not line.strip():
                continue
            raw = _decode(line, skipped)
            if raw is None:
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                skipped["malformed_json"] += 1
                continue
            text = row.get(text_field) if isinstance(row, dict) else None
            if not isinstance(text, str):
                skipped["missing_text_field"] += 1
            elif not text.strip():
                skipped["empty_document"] += 1
            else:
                yield Document(f"{doc_prefix}:{offset}", text)


def parquet_documents(path: Path, doc_prefix: str, text_field: str, skipped: Counter) -> Iterator[Document]:
    """One document per row's `text_field` column, read a batch of rows at a time."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        if text_field not in parquet.schema_arrow.names:
            log.warning("skipping %s: no column %r (columns: %s)", path, text_field, parquet.schema_arrow.names)
            skipped["missing_text_field"] += parquet.metadata.num_rows
            return
        row = 0
        for batch in parquet.iter_batches(batch_size=1024, columns=[text_field]):
            for text in batch.column(0).to_pylist():
                row += 1
                if not isinstance(text, str):
                    skipped["missing_text_field"] += 1
                elif not text.strip():
                    skipped["empty_document"] += 1
                else:
                    yield Document(f"{doc_prefix}:{row}", text)
    except READ_ERRORS as err:
        log.warning("skipping the rest of unreadable file %s: %s", path, err)
        skipped["unreadable_file"] += 1


def file_documents(
    path: Path,
    doc_prefix: str,
    skipped: Counter,
    text_field: str = "text",
    txt_unit: str = "chunk",
    chunk_chars: int = 20000,
    max_line_bytes: int = 16 << 20,
    byte_range: tuple[int, int | None] = (0, None),
) -> Iterator[Document]:
    """Every document of one file of any supported format (or of the lines starting in `byte_range` of an
    uncompressed text/jsonl file); bad content is skipped and counted in `skipped`."""
    fmt = file_format(path)
    if fmt == "parquet":
        yield from parquet_documents(path, doc_prefix, text_field, skipped)
        return
    # A file split into ranges is sniffed by each, but counted once (by the first).
    if not sniff(path, skipped if byte_range[0] == 0 else Counter()):
        return
    try:
        if fmt == "jsonl":
            yield from jsonl_documents(path, doc_prefix, text_field, max_line_bytes, skipped, byte_range)
        else:
            yield from text_documents(path, doc_prefix, txt_unit, chunk_chars, max_line_bytes, skipped, byte_range)
    except READ_ERRORS as err:  # a truncated .gz/.zst: keep what was read, count the file
        log.warning("stopped reading %s part-way: %s", path, err)
        skipped["unreadable_file"] += 1
