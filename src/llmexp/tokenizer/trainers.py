"""Tokenizer training with `tokenizers`: byte-level BPE (GPT-2), WordPiece (BERT), Unigram (SentencePiece/T5), or an
existing tokenizer.json. All are plain `tokenizers` JSON files, so `transformers.PreTrainedTokenizerFast` loads them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as HFTokenizer

from llmexp.tokenizer.tokenizer import EOS_TOKEN, Tokenizer

KINDS = ("byte_level_bpe", "wordpiece", "unigram", "pretrained")
UNK_TOKEN = "<unk>"


def check_settings(kind: str, vocab_size: int, special_tokens: list[str], path: str | None) -> None:
    """Kind-specific checks of tokenizer settings (ValueError naming the key)."""
    if kind == "pretrained":
        if not path:
            raise ValueError("tokenizer.kind=pretrained needs tokenizer.path (a tokenizer.json file)")
        if not Path(path).is_file():
            raise ValueError(f"tokenizer.path={path}: no such file")
        return
    if kind == "byte_level_bpe":
        minimum = 256 + len(special_tokens)
        if vocab_size < minimum:
            raise ValueError(f"tokenizer.vocab_size={vocab_size} is below {minimum} (256 bytes + special tokens)")
        return
    if UNK_TOKEN not in special_tokens:
        raise ValueError(
            f"tokenizer.kind={kind} needs {UNK_TOKEN!r} among tokenizer.special_tokens (for unseen characters), "
            f"got {special_tokens}"
        )
    minimum = len(special_tokens) + 1
    if vocab_size < minimum:
        raise ValueError(f"tokenizer.vocab_size={vocab_size} is below {minimum} (special tokens + 1)")


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int, special: list[str]) -> HFTokenizer:
    """Byte-level BPE as GPT-2 uses it: every byte is in the alphabet, so no text is ever out of vocabulary."""
    backend = HFTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int, special: list[str]) -> HFTokenizer:
    """BERT-style WordPiece (cased): split on whitespace and punctuation, `##` marks word-inner pieces."""
    backend = HFTokenizer(models.WordPiece(unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def train_unigram(texts: Iterable[str], vocab_size: int, min_frequency: int, special: list[str]) -> HFTokenizer:
    """SentencePiece-style Unigram LM: spaces become '▁', so decoding restores the text's spacing."""
    backend = HFTokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=special, unk_token=UNK_TOKEN, show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def load_pretrained(path: str | Path) -> HFTokenizer:
    """An existing tokenizer.json; the end-of-document token is added as a special token when it lacks one."""
    backend = HFTokenizer.from_file(str(path))
    if backend.token_to_id(EOS_TOKEN) is None:
        backend.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])
    return backend


TRAINERS = {"byte_level_bpe": train_byte_level_bpe, "wordpiece": train_wordpiece, "unigram": train_unigram}


def build_tokenizer(
    kind: str,
    texts: Iterable[str],
    vocab_size: int,
    min_frequency: int,
    special_tokens: list[str],
    path: str | None = None,
) -> Tokenizer:
    if kind == "pretrained":
        return Tokenizer(load_pretrained(str(path)))
    return Tokenizer(TRAINERS[kind](texts, vocab_size, min_frequency, list(special_tokens)))
