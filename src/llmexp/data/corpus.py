"""The corpus interface shared by every text source, and the deterministic train/val split."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

Split = Literal["train", "val"]


@dataclass(frozen=True)
class Document:
    """One unit of text; `doc_id` is stable across machines and decides the document's split."""

    doc_id: str
    text: str


def split_of(doc_id: str, val_fraction: float) -> Split:
    """Assign a document to a split by a hash of its id: deterministic, order-independent, stable as corpora grow."""
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64
    return "val" if bucket < val_fraction else "train"


class Corpus(Protocol):
    """A source of documents that knows its own fingerprint (for caching derived artefacts)."""

    def documents(self, split: Split) -> Iterator[Document]: ...

    def fingerprint(self) -> str: ...
