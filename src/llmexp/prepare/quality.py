"""Document quality signals in the style of the Gopher rules (Rae et al. 2021, appendix A) and C4.

Each signal is a number computed from the text; cleaning.CleanConfig compares them with configurable thresholds.
The repetition signals are vectorised with numpy (word ids -> rolling n-gram hashes) so long documents stay cheap.
"""

from __future__ import annotations

import re

import numpy as np

WORD_RE = re.compile(r"\S+")
ALPHA_RE = re.compile(r"[^\W\d_]")
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "◦", "-", "*", "‣", "\u2043")
_MIX = np.uint64(0x9E3779B97F4A7C15)


def words_of(text: str) -> list[str]:
    return WORD_RE.findall(text)


def mean_word_length(words: list[str]) -> float:
    return sum(map(len, words)) / len(words) if words else 0.0


def symbol_to_word_ratio(text: str, words: list[str]) -> float:
    """Hash symbols and ellipses per word (Gopher: at most 0.1)."""
    symbols = text.count("#") + text.count("...") + text.count("…")
    return symbols / max(1, len(words))


def alpha_word_fraction(words: list[str]) -> float:
    """Fraction of words with at least one letter (Gopher: at least 0.8)."""
    return sum(1 for w in words if ALPHA_RE.search(w)) / len(words) if words else 0.0


def bullet_line_fraction(lines: list[str]) -> float:
    return sum(1 for line in lines if line.lstrip().startswith(BULLETS)) / len(lines) if lines else 0.0


def ellipsis_line_fraction(lines: list[str]) -> float:
    return sum(1 for line in lines if line.rstrip().endswith(("...", "…"))) / len(lines) if lines else 0.0


def duplicate_line_fractions(lines: list[str]) -> tuple[float, float]:
    """(fraction of lines that repeat an earlier line, fraction of characters in such lines)."""
    if not lines:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_lines = dup_chars = 0
    for line in lines:
        if line in seen:
            dup_lines += 1
            dup_chars += len(line)
        else:
            seen.add(line)
    return dup_lines / len(lines), dup_chars / max(1, sum(map(len, lines)))


def stop_word_count(words: list[str], stop_words: frozenset[str]) -> int:
    return sum(1 for w in words if w.lower() in stop_words)


class NgramStats:
    """Repeated n-gram signals over one document's words, computed on integer ids."""

    def __init__(self, words: list[str]):
        ids: dict[str, int] = {}
        self.ids = np.fromiter((ids.setdefault(w, len(ids)) for w in words), dtype=np.uint64, count=len(words))
        self.lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self.total_chars = int(self.lengths.sum())

    def _hashes(self, n: int) -> np.ndarray:
        """A 64-bit hash of each n-gram (positions 0 .. len-n); collisions are negligible at document scale."""
        count = len(self.ids) - n + 1
        h = np.zeros(count, dtype=np.uint64)
        for k in range(n):
            h = (h ^ self.ids[k : k + count]) * _MIX
        return h

    def top_ngram_char_fraction(self, n: int) -> float:
        """Characters in all occurrences of the most frequent n-gram over all word characters (Gopher, n = 2..4)."""
        if len(self.ids) < n or self.total_chars == 0:
            return 0.0
        hashes = self._hashes(n)
        _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
        top = int(np.argmax(counts))
        if counts[top] < 2:
            return 0.0
        start = int(first[top])
        chars = int(self.lengths[start : start + n].sum())
        return chars * int(counts[top]) / self.total_chars

    def duplicate_ngram_char_fraction(self, n: int) -> float:
        """Characters of words covered by any n-gram that occurs more than once (Gopher, n = 5..10)."""
        if len(self.ids) < n or self.total_chars == 0:
            return 0.0
        hashes = self._hashes(n)
        _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
        repeated = counts[inverse] > 1
        if not repeated.any():
            return 0.0
        covered = np.zeros(len(self.ids) + 1, dtype=np.int64)
        starts = np.flatnonzero(repeated)
        np.add.at(covered, starts, 1)
        np.add.at(covered, starts + n, -1)
        mask = np.cumsum(covered[:-1]) > 0
        return int(self.lengths[mask].sum()) / self.total_chars
