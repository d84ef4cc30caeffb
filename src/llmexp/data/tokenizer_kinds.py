"""Tokenizers other than byte-level BPE: WordPiece and Unigram trained with `tokenizers`, or an existing
tokenizer.json. All are plain `tokenizers` JSON files, so `transformers.PreTrainedTokenizerFast` loads them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from llmexp.data.tokenizer import EOS_TOKEN, Tokenizer

if TYPE_CHECKING:
    from llmexp.data.tokenizer import TokenizerSpec

UNK_TOKEN = "<unk>"


def check_spec(spec: TokenizerSpec) -> None:
    """Kind-specific checks (byte-level BPE's are in TokenizerSpec itself)."""
    if spec.kind == "pretrained":
        if not spec.path:
            raise ValueError("tokenizer.kind=pretrained needs tokenizer.path (a tokenizer.json file)")
        if not Path(spec.path).is_file():
            raise ValueError(f"tokenizer.path={spec.path}: no such file")
        return
    if UNK_TOKEN not in spec.special_tokens:
        raise ValueError(
            f"tokenizer.kind={spec.kind} needs {UNK_TOKEN!r} among tokenizer.special_tokens (for unseen characters), "
            f"got {spec.special_tokens}"
        )
    minimum = len(spec.special_tokens) + 1
    if spec.vocab_size < minimum:
        raise ValueError(f"tokenizer.vocab_size={spec.vocab_size} is below {minimum} (special tokens + 1)")


def train_wordpiece(spec: TokenizerSpec, texts: Iterable[str]) -> HFTokenizer:
    """BERT-style WordPiece (cased): split on whitespace and punctuation, `##` marks word-inner pieces."""
    backend = HFTokenizer(models.WordPiece(unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=spec.vocab_size,
        min_frequency=spec.min_frequency,
        special_tokens=spec.special_tokens,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def train_unigram(spec: TokenizerSpec, texts: Iterable[str]) -> HFTokenizer:
    """SentencePiece-style Unigram LM: spaces become '▁', so decoding restores the text's spacing."""
    backend = HFTokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=spec.vocab_size, special_tokens=spec.special_tokens, unk_token=UNK_TOKEN, show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def load_pretrained(path: str | Path) -> HFTokenizer:
    """An existing tokenizer.json; the end-of-document token is added as a special token when it lacks one."""
    backend = HFTokenizer.from_file(str(path))
    if backend.token_to_id(EOS_TOKEN) is None:
        backend.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])
    return backend


def build_tokenizer(spec: TokenizerSpec, texts: Iterable[str]) -> Tokenizer:
    if spec.kind == "pretrained":
        return Tokenizer(load_pretrained(str(spec.path)))
    train = {"wordpiece": train_wordpiece, "unigram": train_unigram}[spec.kind]
    return Tokenizer(train(spec, texts))
