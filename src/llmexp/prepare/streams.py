"""The bytes of an input file, as lines of bounded size: decompressed (a truncated or corrupt archive yields what it
holds and says so), UTF-16/32 files (recognised by their byte-order mark) re-encoded to UTF-8, invalid UTF-8 costing
only its own line. Nothing here raises on bad content: what is lost is counted in a `Skipped`.
"""

from __future__ import annotations

import codecs
import io
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import zstandard

READ_CHUNK = 1 << 20
# Checked in this order: a UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
DECODE_ERRORS = ("line", "replace")
_REPLACEMENT = "\ufffd"
_REPLACEMENT_UTF8 = _REPLACEMENT.encode("utf-8")


@dataclass
class Skipped:
    """What reading lost, by reason, with the first example of each (what a person needs to find and fix it)."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1, example: str | None = None) -> None:
        if n <= 0:
            return
        self.counts[reason] += n
        if example is not None:
            self.examples.setdefault(reason, example)


class _Decompressor(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes) -> bytes: ...


class TolerantDecompressed(io.RawIOBase):
    """A compressed file's content; at a truncated end or a corrupt block it ends early with `truncated` set
    (the standard readers raise there and lose the data already decompressed into their buffers)."""

    def __init__(self, raw: BinaryIO, new_decompressor: Callable[[], _Decompressor]):
        self.raw, self.new_decompressor = raw, new_decompressor
        self.decompressor = new_decompressor()
        self.pending = b""
        self.truncated = self.finished = False

    def readable(self) -> bool:
        return True

    def _more(self) -> None:
        data = self.raw.read(READ_CHUNK)
        if not data:
            self.truncated = not self.decompressor.eof
            self.finished = True
            return
        try:
            while data:
                self.pending += self.decompressor.decompress(data)
                data = b""
                if self.decompressor.eof and self.decompressor.unused_data:  # the next member of a multi-member file
                    data = self.decompressor.unused_data
                    self.decompressor = self.new_decompressor()
        except (zlib.error, zstandard.ZstdError, EOFError):
            self.truncated = self.finished = True

    def readinto(self, buffer: Any) -> int:
        while not self.pending and not self.finished:
            self._more()
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, decompressed for .gz and .zst (see TolerantDecompressed)."""
    if path.suffix == ".gz":
        stream = TolerantDecompressed(path.open("rb"), lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))
    elif path.suffix == ".zst":
        stream = TolerantDecompressed(path.open("rb"), lambda: zstandard.ZstdDecompressor().decompressobj())
    else:
        return path.open("rb")
    return io.BufferedReader(stream, READ_CHUNK)  # type: ignore[arg-type]


def was_truncated(handle: BinaryIO) -> bool:
    return bool(getattr(getattr(handle, "raw", None), "truncated", False))


def bom_encoding(head: bytes) -> str | None:
    """'utf-16' or 'utf-32' when the bytes start with that encoding's byte-order mark."""
    return next((encoding for bom, encoding in BOMS if head.startswith(bom)), None)


class Utf8Lines:
    """Lines of a UTF-16/32 text stream, re-encoded to UTF-8 so every reader sees one encoding; readline(limit)
    holds at most `limit` characters."""

    def __init__(self, handle: BinaryIO, encoding: str):
        self.text = io.TextIOWrapper(handle, encoding=encoding, errors="replace", newline="")  # type: ignore[arg-type]

    def readline(self, limit: int = -1) -> bytes:
        return self.text.readline(limit).encode("utf-8")


def _drain(handle: Any) -> int:
    """Read to the end of the current line in bounded pieces; the number of bytes read."""
    n = 0
    while piece := handle.readline(READ_CHUNK):
        n += len(piece)
        if piece.endswith(b"\n"):
            break
    return n


def bounded_lines(
    handle: Any, max_bytes: int, skipped: Skipped, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of the lines that start in [start, end); no line longer than max_bytes is ever held:
    it is read in pieces, dropped and counted. A range that starts mid-line leaves that line to the range before."""
    offset = 0
    if start > 0:
        handle.seek(start - 1)
        if handle.read(1) != b"\n":
            _drain(handle)
        offset = handle.tell()
    while end is None or offset < end:
        line = handle.readline(max_bytes + 1)
        if not line:
            return
        here = offset
        offset += len(line)
        if len(line) > max_bytes and not line.endswith(b"\n"):
            offset += _drain(handle)
            skipped.add("oversized_line", example=f"a line of more than {max_bytes:,} bytes at byte {here:,}")
            continue
        yield here, line


def decode(data: bytes, errors: str, skipped: Skipped) -> str | None:
    """UTF-8 text of one line or row; invalid bytes drop it ('line') or become U+FFFD ('replace'), counted."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        if errors == "line":
            skipped.add("invalid_utf8", example=f"bytes {data[err.start : err.end]!r}")
            return None
    text = data.decode("utf-8", errors="replace")
    skipped.add("replaced_characters", text.count(_REPLACEMENT) - data.count(_REPLACEMENT_UTF8))
    return text


def too_long(text: str, max_bytes: int) -> bool:
    """Whether the UTF-8 form of `text` exceeds max_bytes (encoding only when the length leaves a doubt)."""
    if len(text) > max_bytes:
        return True
    return len(text) * 4 > max_bytes and len(text.encode("utf-8")) > max_bytes
