"""The items of a `.json` file holding one array, one at a time: a small scanner (brackets and strings tracked) finds
where each item ends, then `json.loads` parses just that item. Memory stays near the largest item; an item above
`max_bytes` is scanned over without being held, and a malformed item costs only itself."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from llmexp.prepare.streams import READ_CHUNK, Skipped

_SPACE = re.compile(r"\s*")
_OUTSIDE = re.compile(r'["\[\]{}]')  # what changes the scanner's state outside a string
_INSIDE = re.compile(r'["\\]')
_LITERAL_END = re.compile(r"[\s,\]]")


class _Buffer:
    """Decoded text of the file from `mark` (the start of what is held) on, with a scan position `pos`."""

    def __init__(self, handle: BinaryIO, skipped: Skipped):
        self.handle, self.skipped = handle, skipped
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text, self.pos, self.mark, self.dropped, self.eof = "", 0, 0, 0, False

    def fill(self) -> bool:
        """Append the next chunk (dropping the text before `mark`); False at the end of the file."""
        if self.eof:
            return False
        data = self.handle.read(READ_CHUNK)
        self.eof = not data
        chunk = self.decoder.decode(data, final=self.eof)
        self.skipped.add("replaced_characters", chunk.count("\ufffd") - data.count(b"\xef\xbf\xbd"))
        self.dropped += self.mark
        self.text, self.pos, self.mark = self.text[self.mark :] + chunk, self.pos - self.mark, 0
        return bool(chunk) or not self.eof

    def next_char(self) -> str:
        """The next character that is not white space ('' at the end of the file), not consumed."""
        while True:
            self.pos = self.mark = _SPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self.fill():
                return self.text[self.pos : self.pos + 1]


def _scan_step(buf: _Buffer, state: dict[str, Any]) -> bool:
    """Scan the buffered text of the current item; True once its end is reached."""
    text = buf.text
    while buf.pos < len(text):
        if state["escaped"]:
            buf.pos, state["escaped"] = buf.pos + 1, False
        elif state["literal"]:
            match = _LITERAL_END.search(text, buf.pos)
            buf.pos = match.start() if match else len(text)
            return match is not None
        elif state["in_string"]:
            match = _INSIDE.search(text, buf.pos)
            buf.pos = match.end() if match else len(text)
            if match and match.group() == "\\":
                state["escaped"] = True
            elif match:
                state["in_string"] = False
                if state["depth"] == 0:
                    return True
        else:
            match = _OUTSIDE.search(text, buf.pos)
            buf.pos = match.end() if match else len(text)
            char = match.group() if match else ""
            state["in_string"] = char == '"'
            state["depth"] += 1 if char in ("[", "{") else -1 if char in ("]", "}") else 0
            if char in ("]", "}") and state["depth"] <= 0:
                return True
    return False


def _scan_item(buf: _Buffer, max_chars: int) -> tuple[bool, bool]:
    """Move past one item: (whether its end was found, whether it is still held whole in the buffer)."""
    state = {"depth": 0, "in_string": False, "escaped": False, "literal": buf.text[buf.pos] not in '[{"'}
    held = True
    while not _scan_step(buf, state):
        held = held and buf.pos - buf.mark <= max_chars
        if not held:
            buf.mark = buf.pos  # too large to keep: scan on without holding it
        if not buf.fill():
            return False, held
    return True, held and buf.pos - buf.mark <= max_chars


def json_array_items(handle: BinaryIO, max_bytes: int, skipped: Skipped) -> Iterator[tuple[int, Any]]:
    """(character offset, item) for each item of the top-level array."""
    buf = _Buffer(handle, skipped)
    if buf.next_char() != "[":
        skipped.add("malformed_json", example="a .json file whose content is not one array")
        return
    buf.pos += 1
    while (char := buf.next_char()) != "]":
        if not char:
            skipped.add("malformed_json", example="the array is not closed")
            return
        start = buf.dropped + buf.mark
        found, held = _scan_item(buf, max_bytes)
        if not found:
            skipped.add("malformed_json", example=f"the file ends inside the item at character {start:,}")
            return
        if not held:
            skipped.add("oversized_line", example=f"an array item of more than {max_bytes:,} bytes at {start:,}")
        else:
            try:
                yield start, json.loads(buf.text[buf.mark : buf.pos])
            except json.JSONDecodeError as err:
                skipped.add("malformed_json", example=f"item at character {start:,}: {err.msg}")
        if buf.next_char() == ",":
            buf.pos += 1
