import pytest

from llmexp.data.prepared import load_or_train_tokenizer
from llmexp.data.pydocs import PydocsCorpus
from llmexp.tokenizer import EOS_TOKEN, Tokenizer, TokenizerSpec

SAMPLE = [
    "The for statement is used to iterate over the elements of a sequence.\n",
    "Return a new dict initialized from a mapping object's (key, value) pairs.",
    "def f(x):\n    return x ** 2  # square\n",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return TokenizerSpec(vocab_size=400).train(SAMPLE * 20)


@pytest.mark.parametrize(
    "text", ["", "plain ascii words", "  leading spaces\n\ttabs", "ünïcödé — ≠ 漢字 🙂", "\x00\x01 control", "a" * 1000]
)
def test_round_trip_is_lossless(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_token_bytes_count_utf8_bytes(tokenizer):
    text = "ünïcödé words and 漢字 🙂 " * 3
    counts = tokenizer.token_bytes()
    assert counts[tokenizer.eos_id] == 0
    assert sum(counts[i] for i in tokenizer.encode(text)) == len(text.encode("utf-8"))


def test_training_is_deterministic_and_serialisable(tokenizer):
    again = TokenizerSpec(vocab_size=400).train(SAMPLE * 20)
    assert again.to_str() == tokenizer.to_str()
    restored = Tokenizer.from_str(tokenizer.to_str())
    assert restored.encode(SAMPLE[0]) == tokenizer.encode(SAMPLE[0])
    assert restored.eos_id == tokenizer.backend.token_to_id(EOS_TOKEN)


def test_spec_rejects_impossible_settings():
    with pytest.raises(ValueError, match="vocab_size"):
        TokenizerSpec(vocab_size=100)
    with pytest.raises(ValueError, match="kind"):
        TokenizerSpec(kind="sentencepiece")
    with pytest.raises(ValueError, match="special_tokens"):
        TokenizerSpec(special_tokens=["<pad>"])


def test_cache_trains_once_per_corpus_and_spec(tmp_path, monkeypatch):
    corpus, spec = PydocsCorpus(include_docstrings=False), TokenizerSpec(vocab_size=300)
    first, path = load_or_train_tokenizer(corpus, spec, tmp_path)
    monkeypatch.setattr(TokenizerSpec, "train", lambda *a, **k: pytest.fail("cache was not reused"))
    second, path2 = load_or_train_tokenizer(corpus, spec, tmp_path)
    assert path == path2 and second.to_str() == first.to_str()
    monkeypatch.undo()
    other, path3 = load_or_train_tokenizer(corpus, TokenizerSpec(vocab_size=320), tmp_path)
    assert path3 != path and other.vocab_size == 320
