"""Normalisation and the Gopher/C4-style document filters: each filter drops what it should, counted by name."""

from collections import Counter

import pytest

from llmexp.errors import ConfigError
from llmexp.prepare.cleaning import CleanConfig, normalise

PROSE = (
    "The river ran high that spring, and the village gathered on the bridge to watch the water rise. Old Anna said "
    "she had seen it worse, in the year the mill was lost, but nobody believed her. The children threw sticks into "
    "the current and ran to the other side to see them come out. By evening the rain had stopped, the clouds broke "
    "apart over the hills, and the farmers went home to count what they still had."
)
FILTERS = {
    "min_words": None,
    "max_words": None,
    "min_mean_word_length": None,
    "max_mean_word_length": None,
    "max_symbol_ratio": None,
    "min_alpha_word_fraction": None,
    "max_bullet_line_fraction": None,
    "max_ellipsis_line_fraction": None,
    "max_duplicate_line_fraction": None,
    "max_duplicate_line_char_fraction": None,
    "max_top_ngram_char_fraction": None,
    "max_duplicate_ngram_char_fraction": None,
    "min_stop_words": None,
    "reject_phrases": [],
    "boilerplate_phrases": [],
}


def only(**settings) -> CleanConfig:
    """Every filter off except the given ones."""
    return CleanConfig(**{**FILTERS, **settings})


def stats() -> dict[str, Counter]:
    return {"filtered": Counter(), "lines_removed": Counter(), "pii": Counter(), "skipped": Counter()}


def test_normalisation():
    raw = "Cafe\u0301\r\n\x00Tab\there  \u00a0and\u2003spaces   \n\n\n\n    indented\x1b line\ufeff\n"
    assert normalise(raw, "NFC", True, True) == "Café\nTab here and spaces\n\n    indented line"
    assert normalise("ﬁ", "NFKC", True, True) == "fi"
    assert normalise("a  b", None, False, False) == "a  b"


def test_natural_prose_passes_the_default_filters():
    counts = stats()
    assert CleanConfig().clean(PROSE, counts) == PROSE
    assert not counts["filtered"]


BAD = [
    ("min_words", {"min_words": 50}, "Too short to keep."),
    ("max_words", {"max_words": 100}, PROSE + " " + PROSE),
    ("min_mean_word_length", {"min_mean_word_length": 3.0}, "a b c d e f g h i j " * 5),
    ("max_mean_word_length", {"max_mean_word_length": 10.0}, "incomprehensibilities " * 30),
    ("max_symbol_ratio", {"max_symbol_ratio": 0.1}, PROSE + " #tag #tag #hash #more #yes #no ..." * 3),
    ("min_alpha_word_fraction", {"min_alpha_word_fraction": 0.8}, PROSE + " 1 2 3 4 5 6 7 8 9 10 11 12" * 3),
    ("max_bullet_line_fraction", {"max_bullet_line_fraction": 0.9}, "\n".join(f"• item {i}" for i in range(20))),
    ("max_ellipsis_line_fraction", {"max_ellipsis_line_fraction": 0.3}, "\n".join(["and so on..."] * 5 + [PROSE])),
    ("max_duplicate_line_fraction", {"max_duplicate_line_fraction": 0.3}, "\n".join(["Buy now!"] * 6 + [PROSE])),
    ("max_duplicate_line_char_fraction", {"max_duplicate_line_char_fraction": 0.2}, "\n".join([PROSE] * 2)),
    ("max_top_2gram_char_fraction", {"max_top_ngram_char_fraction": {2: 0.2}}, PROSE + " click here" * 40),
    ("max_duplicate_5gram_char_fraction", {"max_duplicate_ngram_char_fraction": {5: 0.15}}, PROSE + " " + PROSE),
    ("min_stop_words", {"min_stop_words": 2}, "Quick brown foxes jump over lazy dogs near rivers " * 5),
    ("reject_phrase", {"reject_phrases": ["lorem ipsum"]}, PROSE + " Lorem ipsum dolor sit amet."),
]


@pytest.mark.parametrize(("name", "settings", "text"), BAD, ids=[b[0] for b in BAD])
def test_each_filter_drops_what_it_targets_and_counts_it(name, settings, text):
    counts = stats()
    assert only(**settings).clean(PROSE, counts) == PROSE, "the filter must keep natural prose"
    assert only(**settings).clean(text, counts) is None
    assert counts["filtered"] == Counter({name: 1})


def test_language_filter_uses_the_shipped_model():
    german = (
        "Der Fluss stieg in jenem Frühjahr hoch, und das Dorf versammelte sich auf der Brücke, um das Wasser steigen "
        "zu sehen. Die alte Anna sagte, sie habe es schon schlimmer erlebt."
    )
    cfg, counts = only(languages=["en"]), stats()
    assert cfg.clean(PROSE, counts) == PROSE
    assert cfg.clean(german, counts) is None
    assert counts["filtered"] == Counter(language=1)
    assert only(languages=["de"]).clean(german, stats()) is not None


def test_boilerplate_and_short_lines_are_removed_and_counted():
    text = f"{PROSE}\nPlease enable JavaScript to view this page.\nShare\nRead our Privacy Policy."
    counts = stats()
    cleaned = only(boilerplate_phrases=["javascript", "privacy policy"], min_line_words=3).clean(text, counts)
    assert cleaned == PROSE
    assert counts["lines_removed"] == Counter(boilerplate=2, short_line=1)


def test_a_document_emptied_by_cleaning_is_counted():
    counts = stats()
    assert only().clean("\x00\x01  \n\n", counts) is None
    assert counts["filtered"] == Counter(empty_after_cleaning=1)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="normal_form"):
        CleanConfig(normal_form="NFX")
    with pytest.raises(ConfigError, match="min_words=10 exceeds"):
        CleanConfig(min_words=10, max_words=5)
