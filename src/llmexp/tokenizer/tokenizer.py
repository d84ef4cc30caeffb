"""The one tokenizer abstraction of llmexp: a thin wrapper over a `tokenizers.Tokenizer`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders

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
