"""How to get a tokenizer for a run: train one (byte-level BPE, WordPiece, Unigram) or load an existing one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmexp.tokenizer.tokenizer import EOS_TOKEN, Tokenizer
from llmexp.tokenizer.trainers import KINDS, build_tokenizer, check_settings


@dataclass
class TokenizerSpec:
    """How to train a tokenizer; its fingerprint keys the cache so equal specs on equal corpora train once."""

    kind: str = "byte_level_bpe"
    vocab_size: int = 4096
    min_frequency: int = 2
    special_tokens: list[str] = field(default_factory=lambda: [EOS_TOKEN])
    # kind=pretrained: an existing tokenizer.json to load instead of training.
    path: str | None = None

    KINDS = KINDS

    def __post_init__(self) -> None:
        self.special_tokens = list(self.special_tokens)
        if self.kind not in KINDS:
            raise ValueError(f"tokenizer.kind={self.kind!r} is not one of {list(KINDS)}")
        if EOS_TOKEN not in self.special_tokens:
            raise ValueError(f"tokenizer.special_tokens must contain {EOS_TOKEN!r}, got {self.special_tokens}")
        check_settings(self.kind, self.vocab_size, self.special_tokens, self.path)

    def fingerprint(self) -> str:
        fields = asdict(self)
        if fields["path"] is None:  # specs without a path keep the fingerprints (cache keys) they always had
            del fields["path"]
        elif self.kind == "pretrained":  # the file's content, not only its name, decides the tokenizer
            fields["path"] = hashlib.sha256(Path(str(self.path)).read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def train(self, texts: Iterable[str]) -> Tokenizer:
        """A tokenizer of this kind trained on `texts` (or loaded from `path` for kind=pretrained)."""
        return build_tokenizer(self.kind, texts, self.vocab_size, self.min_frequency, self.special_tokens, self.path)
