"""Exact and near-duplicate detection: a content hash, and MinHash signatures indexed by LSH (`datasketch`).

Signatures are computed where documents are cleaned (in parallel workers) and stored; the decision is then taken in
one pass in a fixed order, so the first occurrence is kept and the result does not depend on the number of workers.
Memory grows with the documents *kept*: 16 bytes each for exact dedup, the LSH band keys, and (with `verify`) the
signature (num_perm x 4 bytes) to confirm LSH candidates by their estimated Jaccard similarity.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH

from llmexp.errors import ConfigError

_WORD_RE = re.compile(r"\w+")
_WS_RE = re.compile(r"\s+")
_SHINGLE_MIX = np.uint32(0x9E3779B1)
SCHEME = "affine32"


def exact_digest(text: str) -> bytes:
    """128-bit hash of the text, case-folded with whitespace collapsed (so reflowed copies count as exact)."""
    return xxhash.xxh3_128_digest(_WS_RE.sub(" ", text.lower()).strip().encode("utf-8"))


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """The set of 32-bit hashes of all word `size`-grams of the lower-cased text (one shingle if it is shorter)."""
    words = _WORD_RE.findall(text.lower())
    if not words:
        return np.zeros(0, dtype=np.uint32)
    ids = np.fromiter((xxhash.xxh32_intdigest(w.encode("utf-8")) for w in words), dtype=np.uint32, count=len(words))
    n = min(size, len(ids))
    count = len(ids) - n + 1
    h = np.zeros(count, dtype=np.uint32)
    for k in range(n):
        h = (h ^ ids[k : k + count]) * _SHINGLE_MIX
    return np.unique(h)


@dataclass
class NearDedupConfig:
    """MinHash + LSH settings. With bands and rows unset, datasketch picks them for `threshold` (favouring recall
    when `verify` confirms candidates); set both to choose the S-curve yourself (bands * rows <= num_perm)."""

    enabled: bool = True
    threshold: float = 0.8
    num_perm: int = 128
    shingle_size: int = 5
    bands: int | None = None
    rows: int | None = None
    seed: int = 1
    verify: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"dedup.near.threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2 or self.shingle_size < 1:
            raise ConfigError("dedup.near.num_perm must be >= 2 and dedup.near.shingle_size >= 1")
        if (self.bands is None) != (self.rows is None):
            raise ConfigError("dedup.near.bands and dedup.near.rows must be set together (or both null)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ConfigError(
                f"dedup.near.bands * dedup.near.rows = {self.bands * self.rows} exceeds num_perm={self.num_perm}"
            )


@dataclass
class DedupConfig:
    exact: bool = True
    near: NearDedupConfig = field(default_factory=NearDedupConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.near, NearDedupConfig):
            self.near = NearDedupConfig(**dict(self.near))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Signer:
    """MinHash signatures (uint32[num_perm]) of documents; the permutations are shared by every signature."""

    def __init__(self, cfg: NearDedupConfig):
        self.cfg = cfg
        self.permutations = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme=SCHEME).permutations

    def minhash(self, hashvalues: np.ndarray | None = None) -> MinHash:
        return MinHash(
            num_perm=self.cfg.num_perm,
            seed=self.cfg.seed,
            hashfunc=int,
            hashvalues=hashvalues,
            permutations=self.permutations,
            scheme=SCHEME,
        )

    def signature(self, text: str) -> np.ndarray:
        m = self.minhash()
        m.update_batch(shingle_hashes(text, self.cfg.shingle_size).tolist())
        return m.hashvalues.astype(np.uint32, copy=False)


class Deduplicator:
    """Streaming decisions: `check(digest, signature)` says 'exact', 'near' or None (kept, and remembered)."""

    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self.seen: set[bytes] = set()
        near = cfg.near
        self.signer = Signer(near) if near.enabled else None
        params = (near.bands, near.rows) if near.bands is not None else None
        # datasketch picks bands/rows minimising weighted false-positive and false-negative areas. With verification
        # false positives are cheap (they are checked), so missed duplicates weigh more there.
        weights = (0.1, 0.9) if near.verify else (0.5, 0.5)
        self.lsh = (
            MinHashLSH(threshold=near.threshold, num_perm=near.num_perm, weights=weights, params=params)
            if near.enabled
            else None
        )
        self.kept_signatures: list[np.ndarray] = []

    @property
    def bands_rows(self) -> tuple[int, int] | None:
        return (self.lsh.b, self.lsh.r) if self.lsh is not None else None

    def _near_duplicate(self, signature: np.ndarray) -> bool:
        assert self.lsh is not None and self.signer is not None
        minhash = self.signer.minhash(signature)
        candidates = self.lsh.query(minhash)
        if candidates and not self.cfg.near.verify:
            return True
        for key in candidates:
            if float(np.mean(self.kept_signatures[key] == signature)) >= self.cfg.near.threshold:
                return True
        key = len(self.kept_signatures)
        self.kept_signatures.append(signature if self.cfg.near.verify else signature[:0])
        self.lsh.insert(key, minhash, check_duplication=False)
        return False

    def check(self, digest: bytes, signature: np.ndarray | None) -> str | None:
        if self.cfg.exact:
            if digest in self.seen:
                return "exact"
            self.seen.add(digest)
        if self.lsh is not None and signature is not None and self._near_duplicate(signature):
            return "near"
        return None
