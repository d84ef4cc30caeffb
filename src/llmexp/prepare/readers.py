"""Documents out of local files (.txt, .jsonl, .json arrays, .parquet; .gz/.zst compressed), bad input counted.

Nothing here raises on bad content: a binary, empty or unreadable file, invalid UTF-8, a line or item too long to
hold, a malformed row, a row without the text field, or a truncated archive each add to a named count in a
`Skipped` (with a first example) and reading goes on with what can be read. The prepare manifest lists them by file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from llmexp.data.corpus import Document
from llmexp.errors import ConfigError
from llmexp.prepare.json_arrays import json_array_items
from llmexp.prepare.streams import (
    DECODE_ERRORS,
    Skipped,
    Utf8Lines,
    bom_encoding,
    bounded_lines,
    decode,
    open_binary,
    too_long,
    was_truncated,
)

log = logging.getLogger(__name__)

SNIFF_BYTES = 8192
TXT_UNITS = ("chunk", "paragraph")
# What an unreadable file raises while being read (pyarrow's ArrowInvalid is a ValueError).
READ_ERRORS = (OSError, EOFError, ValueError, zstandard.ZstdError)


@dataclass(frozen=True)
class ReadOptions:
    """How files are cut into documents and what is tolerated (see conf/source/files.yaml)."""

    text_field: str = "text"
    txt_unit: str = "chunk"
    chunk_chars: int = 20000
    max_line_bytes: int = 16 << 20
    decode_errors: str = "line"

    def __post_init__(self) -> None:
        if self.txt_unit not in TXT_UNITS:
            raise ConfigError(f"source.txt_unit={self.txt_unit!r} is not one of {list(TXT_UNITS)}")
        if self.decode_errors not in DECODE_ERRORS:
            raise ConfigError(f"source.decode_errors={self.decode_errors!r} is not one of {list(DECODE_ERRORS)}")
        if self.max_line_bytes < 1 or self.chunk_chars < 0:
            raise ConfigError("source.max_line_bytes must be >= 1 and source.chunk_chars >= 0")


def file_format(path: Path) -> str:
    """'jsonl', 'json' (an array, or rows one per line), 'parquet' or 'txt' (anything else; binary files are
    caught by sniffing)."""
    name = path.name.lower()
    for suffix in (".gz", ".zst"):
        name = name.removesuffix(suffix)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return next((fmt for fmt in ("json", "parquet") if name.endswith(f".{fmt}")), "txt")


def splittable(path: Path) -> bool:
    """Whether a file can be read in byte ranges: uncompressed UTF-8 text or jsonl (lines found from any offset)."""
    if path.suffix in (".gz", ".zst") or file_format(path) not in ("txt", "jsonl"):
        return False
    with path.open("rb") as handle:
        return bom_encoding(handle.read(4)) is None


def sniff(path: Path, skipped: Skipped) -> tuple[str, bytes] | None:
    """(encoding, first bytes), or None (counted) for empty, binary (a NUL byte in the first 8 KiB without a
    UTF-16/32 byte-order mark) and unreadable files."""
    try:
        with open_binary(path) as handle:
            head = handle.read(SNIFF_BYTES)
    except READ_ERRORS as err:
        skipped.add("unreadable_file", example=f"{path.name}: {err}")
        return None
    encoding = bom_encoding(head)
    if not head:
        skipped.add("empty_file", example=path.name)
    elif encoding is None and b"\x00" in head:
        skipped.add("binary_file", example=path.name)
    else:
        return encoding or "utf-8", head
    return None


def row_text(row: Any, field: str, max_bytes: int, skipped: Skipped) -> str | None:
    """The row's text field, or None (counted: the field is named, with the fields the row does have)."""
    text = row.get(field) if isinstance(row, dict) else None
    if not isinstance(text, str):
        has = f"its fields: {', '.join(map(str, row))}" if isinstance(row, dict) else f"a {type(row).__name__}"
        skipped.add("missing_text_field", example=f"source.text_field={field!r} not in a row ({has})")
    elif not text.strip():
        skipped.add("empty_document")
    elif too_long(text, max_bytes):
        skipped.add("oversized_line", example=f"a {field!r} of more than {max_bytes:,} bytes")
    else:
        return text
    return None


def text_documents(
    lines: Any, doc_prefix: str, options: ReadOptions, skipped: Skipped, byte_range: tuple
) -> Iterator[Document]:
    """Text cut at line ends into documents of about `chunk_chars` ('chunk'; 0 = the whole file) or one per
    blank-line-separated paragraph ('paragraph'). Invalid UTF-8 costs only its line (see streams.decode)."""
    held: list[bytes] = []
    size, first = 0, 0

    def flush() -> Iterator[Document]:
        data = b"".join(held)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "".join(t for t in (decode(line, options.decode_errors, skipped) for line in held) if t)
        if text.strip():
            yield Document(f"{doc_prefix}:{first}", text)

    for offset, line in bounded_lines(lines, options.max_line_bytes, skipped, *byte_range):
        if not held:
            first = offset
        if options.txt_unit == "paragraph" and not line.strip():
            if held:
                yield from flush()
            held, size = [], 0
            continue
        held.append(line)
        size += len(line)
        if options.txt_unit == "chunk" and options.chunk_chars and size >= options.chunk_chars:
            yield from flush()
            held, size = [], 0
    if held:
        yield from flush()


def jsonl_rows(lines: Any, options: ReadOptions, skipped: Skipped, byte_range: tuple) -> Iterator[tuple[int, Any]]:
    """(byte offset, parsed row) per line; malformed rows and undecodable lines are counted."""
    for offset, line in bounded_lines(lines, options.max_line_bytes, skipped, *byte_range):
        if not line.strip():
            continue
        raw = decode(line, options.decode_errors, skipped)
        if raw is None:
            continue
        try:
            yield offset, json.loads(raw)
        except json.JSONDecodeError as err:
            skipped.add("malformed_json", example=f"row at byte {offset:,}: {err.msg}")


def json_rows(handle: BinaryIO, head: bytes, options: ReadOptions, skipped: Skipped, byte_range: tuple) -> Iterator:
    """(offset, row) of a .json file: the items of its array, or one row per line."""
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        return json_array_items(handle, options.max_line_bytes, skipped)
    return jsonl_rows(handle, options, skipped, byte_range)


def parquet_documents(path: Path, doc_prefix: str, options: ReadOptions, skipped: Skipped) -> Iterator[Document]:
    """One document per row's text column, read a batch of rows at a time."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        if options.text_field not in names:
            example = f"source.text_field={options.text_field!r} not in {path.name} (its columns: {', '.join(names)})"
            skipped.add("missing_text_field", parquet.metadata.num_rows, example)
            return
        row = 0
        for batch in parquet.iter_batches(batch_size=1024, columns=[options.text_field]):
            for value in batch.column(0).to_pylist():
                row += 1
                text = row_text({options.text_field: value}, options.text_field, options.max_line_bytes, skipped)
                if text is not None:
                    yield Document(f"{doc_prefix}:{row}", text)
    except READ_ERRORS as err:
        skipped.add("unreadable_file", example=f"{path.name}: {err}")


def file_documents(
    path: Path, doc_prefix: str, skipped: Skipped, options: ReadOptions, byte_range: tuple[int, int | None] = (0, None)
) -> Iterator[Document]:
    """Every document of one file (or of the lines starting in `byte_range` of an uncompressed text/jsonl file)."""
    fmt = file_format(path)
    if fmt == "parquet":
        yield from parquet_documents(path, doc_prefix, options, skipped)
        return
    # A file split into ranges is sniffed by each, but counted once (by the first).
    sniffed = sniff(path, skipped if byte_range[0] == 0 else Skipped())
    if sniffed is None:
        return
    encoding, head = sniffed
    try:
        with open_binary(path) as handle:
            lines = handle if encoding == "utf-8" else Utf8Lines(handle, encoding)
            if fmt == "txt":
                yield from text_documents(lines, doc_prefix, options, skipped, byte_range)
            else:
                if fmt == "json":  # a UTF-16/32 file starts with its byte-order mark: read as rows by line
                    rows = json_rows(lines, head, options, skipped, byte_range)
                else:
                    rows = jsonl_rows(lines, options, skipped, byte_range)
                for offset, row in rows:
                    if (text := row_text(row, options.text_field, options.max_line_bytes, skipped)) is not None:
                        yield Document(f"{doc_prefix}:{offset}", text)
            if was_truncated(handle):
                skipped.add("truncated_file", example=f"{path.name}: cut short or corrupt; what came before is kept")
    except READ_ERRORS as err:
        log.warning("stopped reading %s part-way: %s", path, err)
        skipped.add("unreadable_file", example=f"{path.name}: {err}")
