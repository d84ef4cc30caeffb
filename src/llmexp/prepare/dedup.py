"""Exact and near-duplicate detection: what is computed per document and per unit, in parallel.

Per document: a content hash (exact) and a MinHash signature of its word shingles (near). Per unit: its *keys*, one
row per document and LSH band (and one for the content hash), sorted by key, so that documents sharing a key meet in
one partition of the key space; `clusters` pairs them there, confirms each candidate pair (identical content hash, or
exact Jaccard similarity of the shingle sets >= threshold) and removes all but the first document of each connected
group. The bands and rows are chosen so that a pair at the threshold becomes a candidate with probability >= 0.99.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xxhash
from datasketch import MinHash

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
    """MinHash + LSH settings. With bands and rows unset they are chosen for `threshold` (see lsh_params); set both
    to choose the S-curve yourself (bands * rows <= num_perm). `verify` confirms candidates by the exact Jaccard
    similarity of their shingle sets (false: every LSH candidate counts)."""

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

    @property
    def active(self) -> bool:
        return self.exact or self.near.enabled

    @property
    def bands_rows(self) -> tuple[int, int] | None:
        near = self.near
        if not near.enabled:
            return None
        return (near.bands, near.rows) if near.bands is not None else lsh_params(near.threshold, near.num_perm)


def lsh_params(threshold: float, num_perm: int, at_threshold: float = 0.99) -> tuple[int, int]:
    """(bands, rows): the most selective banding (most rows per band, so fewest chance candidates) under which a
    pair whose similarity equals the threshold still becomes a candidate with probability >= `at_threshold`."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= at_threshold:
            return bands, rows
    return num_perm, 1


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


EXACT, BAND = 0, 1  # the kinds of key
_MIX64 = np.uint64(0x9E3779B97F4A7C15)


def doc_ids(unit: int, rows: int) -> np.ndarray:
    """Global document ids (unit << 32 | row): their order is the corpus order, whatever the partitioning."""
    return (np.uint64(unit) << np.uint64(32)) | np.arange(rows, dtype=np.uint64)


def unit_keys(unit: int, digests: np.ndarray | None, signatures: np.ndarray | None, cfg: DedupConfig) -> np.ndarray:
    """(key, kind, document id) rows of one unit, sorted: the first 8 bytes of each content hash (kind EXACT) and
    a 64-bit hash of each LSH band of each signature (kind BAND, band index mixed in)."""
    parts = []
    n = len(digests) if digests is not None else len(signatures)
    ids = doc_ids(unit, n)
    if cfg.exact and digests is not None:
        parts.append(np.stack([digests[:, :8].copy().view(np.uint64)[:, 0], np.full(n, EXACT, np.uint64), ids], 1))
    if signatures is not None and cfg.bands_rows is not None:
        bands, rows = cfg.bands_rows
        with np.errstate(over="ignore"):
            for band in range(bands):
                h = np.full(n, band + 1, dtype=np.uint64) * _MIX64
                for column in signatures[:, band * rows : (band + 1) * rows].T.astype(np.uint64):
                    h = (h ^ column) * _MIX64
                parts.append(np.stack([h, np.full(n, BAND, np.uint64), ids], 1))
    keys = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.uint64)
    return keys[np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sets given as sorted unique arrays."""
    union = len(a) + len(b)
    if union == 0:
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (union - common)
