"""Token ids to streamed text: hold back what may still change (a half UTF-8 character, the start of a stop string)."""

from __future__ import annotations

from llmexp.tokenizer import Tokenizer


def _pending_stop_prefix(text: str, stops: list[str]) -> int:
    """Length of the longest end of `text` that begins some stop string (it may complete with the next token)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class TextStream:
    """Accumulates one choice's token ids; `push` returns the text that is now final, `finish` the rest."""

    def __init__(self, tokenizer: Tokenizer, stops: list[str]):
        self.tokenizer, self.stops = tokenizer, stops
        self.ids: list[int] = []
        self.sent = 0
        self.stopped = False  # a stop string was generated: the text ends before it

    def _text(self) -> str:
        return self.tokenizer.decode(self.ids)

    def _cut_at_stop(self, text: str) -> str | None:
        hits = [index for index in (text.find(s) for s in self.stops) if index >= 0]
        return text[: min(hits)] if hits else None

    def push(self, token: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token)
        text = self._text()
        cut = self._cut_at_stop(text)
        if cut is not None:
            self.stopped = True
            return self._emit(cut, len(cut))
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for its other bytes
            return ""
        return self._emit(text, len(text) - _pending_stop_prefix(text, self.stops))

    def finish(self) -> str:
        """Whatever was held back, once no more tokens come."""
        if self.stopped:
            return ""
        text = self._text()
        return self._emit(text, len(text))

    def _emit(self, text: str, end: int) -> str:
        if end <= self.sent:
            return ""
        piece, self.sent = text[self.sent : end], end
        return piece

    @property
    def text(self) -> str:
        """The full text generated so far (cut at a stop string)."""
        text = self._text()
        cut = self._cut_at_stop(text)
        return text if cut is None else cut
