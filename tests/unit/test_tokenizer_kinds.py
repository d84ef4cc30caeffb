"""WordPiece, Unigram and pretrained tokenizers: trained or loaded, and loadable by transformers."""

import json

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from llmexp.tokenizer import EOS_TOKEN, Tokenizer, TokenizerSpec

TEXTS = [
    "The for statement is used to iterate over the elements of a sequence.",
    "Return a new dictionary initialised from a mapping object's pairs.",
    "Naïve café owners serve crème brûlée on Tuesdays.",
] * 30


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_trained_kinds_load_in_transformers(kind, tmp_path):
    from transformers import PreTrainedTokenizerFast

    tokenizer = TokenizerSpec(kind=kind, vocab_size=200, special_tokens=[EOS_TOKEN, "<unk>"]).train(TEXTS)
    tokenizer.save(tmp_path / "tokenizer.json")
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    for text in TEXTS[:3]:
        ids = tokenizer.encode(text)
        assert hf(text, add_special_tokens=False)["input_ids"] == ids
        assert tokenizer.decode(ids) == hf.decode(ids)
    assert tokenizer.eos_id == hf.convert_tokens_to_ids(EOS_TOKEN)
    assert tokenizer.decode(tokenizer.encode(TEXTS[0])) == TEXTS[0]


def test_pretrained_file_is_loaded_and_given_an_eos_token(tmp_path):
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    backend = HFTokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    backend.save(str(path))
    spec = TokenizerSpec(kind="pretrained", path=str(path))
    tokenizer = spec.train([])
    assert tokenizer.encode("hello world") == [1, 2]
    assert tokenizer.eos_id == 3 and tokenizer.vocab_size == 4
    fingerprint = spec.fingerprint()
    path.write_text(json.dumps({**json.loads(path.read_text()), "truncation": None}) + " ")
    assert TokenizerSpec(kind="pretrained", path=str(path)).fingerprint() != fingerprint


def test_byte_level_fingerprint_is_unchanged_by_the_new_path_field():
    spec = TokenizerSpec(vocab_size=300)
    assert "path" not in spec.fingerprint() and spec.fingerprint() == TokenizerSpec(vocab_size=300).fingerprint()
    restored = Tokenizer.from_str(spec.train(TEXTS).to_str())
    assert restored.eos_id == 0


def test_kind_specific_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="needs '<unk>'"):
        TokenizerSpec(kind="wordpiece")
    with pytest.raises(ValueError, match=r"needs tokenizer\.path"):
        TokenizerSpec(kind="pretrained")
    with pytest.raises(ValueError, match="no such file"):
        TokenizerSpec(kind="pretrained", path=str(tmp_path / "missing.json"))
