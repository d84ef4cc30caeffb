"""Normalise text and drop low-quality documents, counting why each was dropped.

Order per document: Unicode normalisation -> control characters -> whitespace -> boilerplate and short lines (C4) ->
document filters (Gopher quality and repetition rules, C4 rejections) -> optional language filter. Every threshold
is a config value; `null` switches that filter off. Counts go to `stats["filtered"]` (one per dropped document, under
the first filter it failed) and `stats["lines_removed"]`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmexp.errors import ConfigError
from llmexp.prepare import quality

# C0/C1 control characters except tab and newline (carriage returns are turned into newlines first).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028\u2029\ufeff]")
_SPACES_RE = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
NORMAL_FORMS = ("NFC", "NFKC", "NFD", "NFKD")
DEFAULT_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
DEFAULT_BOILERPLATE = [
    "javascript",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "privacy policy",
    "terms of use",
    "terms of service",
    "all rights reserved",
]


def normalise(text: str, form: str | None, strip_control: bool, whitespace: bool) -> str:
    """Unicode normal form, control characters removed, spaces collapsed, trailing spaces and excess blank lines
    dropped. Newlines and the indentation at the start of a line are kept (code and poetry need them)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if form:
        text = unicodedata.normalize(form, text)
    if strip_control:
        text = _CONTROL_RE.sub("", text)
    if whitespace:
        lines = []
        for line in text.split("\n"):
            body = line.lstrip(" \t")
            indent = line[: len(line) - len(body)]
            lines.append(indent + _SPACES_RE.sub(" ", body).rstrip())
        text = _BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip("\n")
    return text


@functools.lru_cache(maxsize=1)
def _language_identifier() -> Any:
    """py3langid ships its model inside the package (no download); loaded once per process (~0.7 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@dataclass
class CleanConfig:
    """How documents are normalised and which are dropped; see conf/clean/default.yaml for the defaults' sources."""

    normal_form: str | None = "NFC"
    strip_control: bool = True
    normalise_whitespace: bool = True
    # Line-level (C4): lines containing a boilerplate phrase (case-insensitive) and lines of fewer words are removed.
    boilerplate_phrases: list[str] = field(default_factory=lambda: list(DEFAULT_BOILERPLATE))
    min_line_words: int | None = None
    # Document-level; None switches a filter off.
    min_words: int | None = 50
    max_words: int | None = 100000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_ratio: float | None = 0.1
    min_alpha_word_fraction: float | None = 0.8
    max_bullet_line_fraction: float | None = 0.9
    max_ellipsis_line_fraction: float | None = 0.3
    max_duplicate_line_fraction: float | None = 0.3
    max_duplicate_line_char_fraction: float | None = 0.2
    max_top_ngram_char_fraction: dict[int, float] | None = field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    max_duplicate_ngram_char_fraction: dict[int, float] | None = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    stop_words: list[str] = field(default_factory=lambda: list(DEFAULT_STOP_WORDS))
    min_stop_words: int | None = 2
    reject_phrases: list[str] = field(default_factory=lambda: ["lorem ipsum"])
    # Optional language filter (py3langid): keep documents whose top language is listed with at least this score.
    languages: list[str] | None = None
    min_language_score: float = 0.5

    def __post_init__(self) -> None:
        if self.normal_form is not None and self.normal_form not in NORMAL_FORMS:
            raise ConfigError(f"clean.normal_form={self.normal_form!r} is not one of {[*NORMAL_FORMS, None]}")
        for name in ("max_top_ngram_char_fraction", "max_duplicate_ngram_char_fraction"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, {int(k): float(v) for k, v in dict(value).items()})
        self.boilerplate_phrases = [p.lower() for p in self.boilerplate_phrases]
        self.reject_phrases = [p.lower() for p in self.reject_phrases]
        self.stop_words = [w.lower() for w in self.stop_words]
        self.languages = list(self.languages) if self.languages else None
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ConfigError(f"clean.min_words={self.min_words} exceeds clean.max_words={self.max_words}")

    def _keep_line(self, line: str, removed: Counter) -> bool:
        lowered = line.lower()
        if self.boilerplate_phrases and any(p in lowered for p in self.boilerplate_phrases):
            removed["boilerplate"] += 1
            return False
        if self.min_line_words and line.strip() and len(line.split()) < self.min_line_words:
            removed["short_line"] += 1
            return False
        return True

    def _failed_filter(self, text: str) -> str | None:
        """The name of the first document filter the text fails, or None if it passes them all."""
        words = quality.words_of(text)
        lines = [line for line in text.split("\n") if line.strip()]
        lowered = text.lower()
        stop_words = frozenset(self.stop_words)
        rules: list[tuple[str, Any, Any]] = [
            ("min_words", self.min_words, lambda limit: len(words) >= limit),
            ("max_words", self.max_words, lambda limit: len(words) <= limit),
            ("min_mean_word_length", self.min_mean_word_length, lambda x: quality.mean_word_length(words) >= x),
            ("max_mean_word_length", self.max_mean_word_length, lambda x: quality.mean_word_length(words) <= x),
            ("max_symbol_ratio", self.max_symbol_ratio, lambda x: quality.symbol_to_word_ratio(text, words) <= x),
            (
                "min_alpha_word_fraction",
                self.min_alpha_word_fraction,
                lambda x: quality.alpha_word_fraction(words) >= x,
            ),
            (
                "max_bullet_line_fraction",
                self.max_bullet_line_fraction,
                lambda x: quality.bullet_line_fraction(lines) <= x,
            ),
            (
                "max_ellipsis_line_fraction",
                self.max_ellipsis_line_fraction,
                lambda x: quality.ellipsis_line_fraction(lines) <= x,
            ),
            ("min_stop_words", self.min_stop_words, lambda x: quality.stop_word_count(words, stop_words) >= x),
            ("reject_phrase", self.reject_phrases or None, lambda phrases: not any(p in lowered for p in phrases)),
        ]
        for name, limit, passes in rules:
            if limit is not None and not passes(limit):
                return name
        return self._failed_repetition(lines, words)

    def _failed_repetition(self, lines: list[str], words: list[str]) -> str | None:
        if self.max_duplicate_line_fraction is not None or self.max_duplicate_line_char_fraction is not None:
            line_frac, char_frac = quality.duplicate_line_fractions(lines)
            if self.max_duplicate_line_fraction is not None and line_frac > self.max_duplicate_line_fraction:
                return "max_duplicate_line_fraction"
            if self.max_duplicate_line_char_fraction is not None and char_frac > self.max_duplicate_line_char_fraction:
                return "max_duplicate_line_char_fraction"
        if not (self.max_top_ngram_char_fraction or self.max_duplicate_ngram_char_fraction):
            return None
        ngrams = quality.NgramStats(words)
        for n, limit in sorted((self.max_top_ngram_char_fraction or {}).items()):
            if ngrams.top_ngram_char_fraction(n) > limit:
                return f"max_top_{n}gram_char_fraction"
        for n, limit in sorted((self.max_duplicate_ngram_char_fraction or {}).items()):
            if ngrams.duplicate_ngram_char_fraction(n) > limit:
                return f"max_duplicate_{n}gram_char_fraction"
        return None

    def _wrong_language(self, text: str) -> bool:
        language, score = _language_identifier().classify(text[:10000])
        return language not in self.languages or score < self.min_language_score

    def clean(self, text: str, stats: dict[str, Counter]) -> str | None:
        """The cleaned text, or None when the document is dropped (counted in stats)."""
        return self.clean_or_reason(text, stats)[0]

    def clean_or_reason(self, text: str, stats: dict[str, Counter]) -> tuple[str | None, str | None]:
        """(the cleaned text, None), or (None, the filter that dropped it); counted in stats either way."""
        text = normalise(text, self.normal_form, self.strip_control, self.normalise_whitespace)
        if self.boilerplate_phrases or self.min_line_words:
            kept = [line for line in text.split("\n") if self._keep_line(line, stats["lines_removed"])]
            text = "\n".join(kept).strip("\n")
        failed = None if text.strip() else "empty_after_cleaning"
        failed = failed or self._failed_filter(text)
        if failed is None and self.languages and self._wrong_language(text):
            failed = "language"
        if failed is not None:
            stats["filtered"][failed] += 1
            return None, failed
        return text, None
