"""The one tokenizer abstraction of llmexp: a thin wrapper over a `tokenizers.Tokenizer`, and how to train one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

EOS_TOKEN = "<|endoftext|>"


class Tokenizer:
    """Encode/decode plus what training needs to know: vocab size, the end-of-document id, bytes per token."""

    def __init__(self, backend: HFTokenizer, eos_token: str = EOS_TOKEN):
        self.backend = backend
        self.eos_token = eos_token
        eos_id = backend.token_to_id(eos_token)
        if eos_id is None:
            raise ValueError(f"tokenizer has no end-of-document token {eos_token!r}")
        self.eos_id: int = eos_id

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [enc.ids for enc in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each token stands for (0 for special tokens): the denominator of bits per byte.

        Byte-level vocabularies spell every byte as one character, so a token's length is its byte count; other
        vocabularies fall back to the byte length of the decoded token.
        """
        special = {tok.content for tok in self.backend.get_added_tokens_decoder().values() if tok.special}
        byte_level = isinstance(self.backend.decoder, decoders.ByteLevel)
        counts = np.zeros(self.vocab_size, dtype=np.int32)
        for token, idx in self.backend.get_vocab(with_added_tokens=True).items():
            if token in special:
                continue
            counts[idx] = len(token) if byte_level else len(self.backend.decode([idx]).encode("utf-8"))
        return counts

    def to_str(self) -> str:
        return self.backend.to_str()

    @classmethod
    def from_str(cls, serialized: str, eos_token: str = EOS_TOKEN) -> Tokenizer:
        return cls(HFTokenizer.from_str(serialized), eos_token)

    def save(self, path: str | Path) -> None:
        self.backend.save(str(path))

    @classmethod
    def load(cls, path: str | Path, eos_token: str = EOS_TOKEN) -> Tokenizer:
        return cls(HFTokenizer.from_file(str(path)), eos_token)

    def sha256(self) -> str:
        return hashlib.sha256(self.to_str().encode("utf-8")).hexdigest()


@dataclass
class TokenizerSpec:
    """How to train a tokenizer; its fingerprint keys the cache so equal specs on equal corpora train once."""

    kind: str = "byte_level_bpe"
    vocab_size: int = 4096
    min_frequency: int = 2
    special_tokens: list[str] = field(default_factory=lambda: [EOS_TOKEN])
    # kind=pretrained: an existing tokenizer.json to load instead of training (see llmexp.data.tokenizer_kinds).
    path: str | None = None

    KINDS = ("byte_level_bpe", "wordpiece", "unigram", "pretrained")

    def __post_init__(self) -> None:
        self.special_tokens = list(self.special_tokens)
        if self.kind not in self.KINDS:
            raise ValueError(f"tokenizer.kind={self.kind!r} is not one of {list(self.KINDS)}")
        if EOS_TOKEN not in self.special_tokens:
            raise ValueError(f"tokenizer.special_tokens must contain {EOS_TOKEN!r}, got {self.special_tokens}")
        if self.kind != "byte_level_bpe":
            from llmexp.data.tokenizer_kinds import check_spec

            check_spec(self)
            return
        minimum = 256 + len(self.special_tokens)
        if self.vocab_size < minimum:
            raise ValueError(f"tokenizer.vocab_size={self.vocab_size} is below {minimum} (256 bytes + special tokens)")

    def fingerprint(self) -> str:
        fields = asdict(self)
        if fields["path"] is None:  # specs without a path keep the fingerprints (cache keys) they always had
            del fields["path"]
        elif self.kind == "pretrained":  # the file's content, not only its name, decides the tokenizer
            fields["path"] = hashlib.sha256(Path(str(self.path)).read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def train(self, texts: Iterable[str]) -> Tokenizer:
        """Byte-level BPE as GPT-2 uses it: every byte is in the alphabet, so no text is ever out of vocabulary.

        Other kinds (WordPiece, Unigram, a pretrained tokenizer.json) are built by llmexp.data.tokenizer_kinds.
        """
        if self.kind != "byte_level_bpe":
            from llmexp.data.tokenizer_kinds import build_tokenizer

            return build_tokenizer(self, texts)
        backend = HFTokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size,
            min_frequency=self.min_frequency,
            special_tokens=self.special_tokens,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(texts, trainer=trainer)
        return Tokenizer(backend)
