"""Duplicate groups from the keys of every unit (see `dedup`), found in parallel over partitions of the key space.

In each partition, documents sharing a key are paired with the first of them (the pairs do not depend on how the
key space is cut); a pair counts when it is confirmed: identical content hashes for an exact key, exact Jaccard
similarity of the shingle sets >= threshold for an LSH band. The confirmed pairs of all partitions are joined into
connected groups, and every document but the first of its group is removed: the same result on one machine or on
any number of SLURM tasks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmexp.prepare.dedup import EXACT, DedupConfig, Signer, exact_digest, jaccard, shingle_hashes, unit_keys
from llmexp.prepare.shard_writer import atomic_save_npy, atomic_write_bytes
from llmexp.prepare.stages import EXAMPLES, REASONS, REMOVED, quote, read_unit_table

KEY_SPACE = 1 << 64


def partition_rows(key_files: list[str], part: int, parts: int) -> np.ndarray:
    """The key rows of every unit whose key falls in partition `part` of `parts` equal ranges of the key space."""
    lo, hi = part * KEY_SPACE // parts, (part + 1) * KEY_SPACE // parts
    chunks = []
    for path in key_files:
        rows = np.load(path, mmap_mode="r")
        if not len(rows):
            continue
        keys = rows[:, 0]
        start = int(np.searchsorted(keys, np.uint64(lo), "left"))
        stop = len(keys) if hi >= KEY_SPACE else int(np.searchsorted(keys, np.uint64(hi), "left"))
        chunks.append(np.asarray(rows[start:stop]))
    return np.concatenate(chunks) if chunks else np.zeros((0, 3), dtype=np.uint64)


def candidates(rows: np.ndarray) -> np.ndarray:
    """(first id, other id, kind) for every document that shares a key (and its kind) with an earlier one."""
    if not len(rows):
        return np.zeros((0, 3), dtype=np.uint64)
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
    starts = np.r_[True, (rows[1:, 0] != rows[:-1, 0]) | (rows[1:, 1] != rows[:-1, 1])]
    first = rows[np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0)), 2]
    pairs = np.stack([first[~starts], rows[~starts, 2], rows[~starts, 1]], axis=1)
    return np.unique(pairs, axis=0)


class Documents:
    """What confirmation needs of a document, by id, with shingle sets cached (a document meets several others)."""

    def __init__(self, text_of: Callable[[int], str], digest_of: Callable[[int], bytes], shingle_size: int):
        self.text_of, self.digest_of, self.shingle_size = text_of, digest_of, shingle_size
        self._shingles: dict[int, np.ndarray] = {}

    def shingles(self, doc: int) -> np.ndarray:
        if doc not in self._shingles:
            self._shingles[doc] = shingle_hashes(self.text_of(doc), self.shingle_size)
        return self._shingles[doc]


def confirm(pairs: np.ndarray, docs: Documents, cfg: DedupConfig) -> np.ndarray:
    """The candidate pairs that are duplicates (see the module docstring)."""
    keep = np.zeros(len(pairs), dtype=bool)
    for i, (a, b, kind) in enumerate(pairs.tolist()):
        if kind == EXACT:
            keep[i] = docs.digest_of(a) == docs.digest_of(b)
        else:
            keep[i] = not cfg.near.verify or jaccard(docs.shingles(a), docs.shingles(b)) >= cfg.near.threshold
    return pairs[keep]


def first_of_group(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For nodes 0..n-1 joined by edges (a, b), the smallest node of each one's connected group."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # pointer jumping: groups collapse in about log(diameter) rounds
        if np.array_equal(new, label):
            return label
        label = new


def resolve(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(removed ids, sorted; which of them are exact copies; the kept first document of each one's group): all
    but the first document of each group go."""
    if not len(edges):
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.uint64)
    ids = np.unique(edges[:, :2])
    label = first_of_group(len(ids), np.searchsorted(ids, edges[:, 0]), np.searchsorted(ids, edges[:, 1]))
    gone = label != np.arange(len(ids))
    removed = ids[gone]
    return removed, np.isin(removed, edges[edges[:, 2] == EXACT, 1]), ids[label[gone]]


def find_duplicates(texts: list[str], cfg: DedupConfig) -> list[str | None]:
    """'exact', 'near' or None for each text, in memory, through the same steps as a prepare run."""
    digests = np.frombuffer(b"".join(exact_digest(t) for t in texts), dtype=np.uint8).reshape(-1, 16)
    signer = Signer(cfg.near) if cfg.near.enabled else None
    signatures = np.stack([signer.signature(t) for t in texts]) if signer is not None else None
    pairs = candidates(unit_keys(0, digests, signatures, cfg))
    docs = Documents(lambda i: texts[i], lambda i: digests[i].tobytes(), cfg.near.shingle_size)
    removed, exact, _ = resolve(confirm(pairs, docs, cfg))
    verdicts: list[str | None] = [None] * len(texts)
    for doc, is_exact in zip(removed.tolist(), exact.tolist(), strict=True):
        verdicts[doc] = "exact" if is_exact else "near"
    return verdicts


REASON_NAMES = ("exact", "near", "contaminated")  # codes 0, 1, 2 in reasons.npy
SUMMARY = "summary.json"


def column_reader(clean_paths: list[str], name: str) -> Callable[[int], Any]:
    """A function from document id to one column's value, opening each unit's Arrow file once."""
    columns: dict[int, Any] = {}

    def value(doc: int) -> Any:
        unit, row = doc >> 32, doc & 0xFFFFFFFF
        if unit not in columns:
            columns[unit] = read_unit_table(clean_paths[unit], [name]).column(0)
        return columns[unit][row].as_py()

    return value


@dataclass
class ClusterJob:
    """The confirmed duplicate pairs of one partition of the key space -> <out_path> ((first, other, kind) rows)."""

    part: int
    parts: int
    key_files: list[str]
    clean_paths: list[str]
    dedup: DedupConfig
    out_path: str

    def done(self) -> bool:
        return Path(self.out_path).exists()

    def run(self) -> None:
        pairs = candidates(partition_rows(self.key_files, self.part, self.parts))
        text_of, digest_of = column_reader(self.clean_paths, "text"), column_reader(self.clean_paths, "digest")
        docs = Documents(text_of, digest_of, self.dedup.near.shingle_size)
        atomic_save_npy(Path(self.out_path), confirm(pairs, docs, self.dedup))


@dataclass
class DecideJob:
    """Which documents go: all but the first of each duplicate group, and (when decontamination drops) those
    that overlap a benchmark -> removed.npy, reasons.npy, summary.json (counts and a few quoted examples)."""

    edge_files: list[str]
    hit_files: dict[int, str]  # unit index -> its decontamination hits, when they drop documents
    clean_paths: list[str]
    out_dir: str

    def done(self) -> bool:
        return (Path(self.out_dir) / SUMMARY).exists()

    def run(self) -> None:
        edges = [np.load(path) for path in self.edge_files]
        removed, exact, first = resolve(np.concatenate(edges) if edges else np.zeros((0, 3), dtype=np.uint64))
        reasons = np.where(exact, 0, 1).astype(np.uint8)
        hits = [(np.uint64(u) << np.uint64(32)) + np.load(p)[:, 0].astype(np.uint64) for u, p in self.hit_files.items()]
        contaminated = np.setdiff1d(np.concatenate(hits) if hits else np.zeros(0, np.uint64), removed)
        removed = np.concatenate([removed, contaminated])
        reasons = np.concatenate([reasons, np.full(len(contaminated), 2, dtype=np.uint8)])
        first = np.concatenate([first, contaminated])
        order = np.argsort(removed, kind="stable")
        out = Path(self.out_dir)
        atomic_save_npy(out / REMOVED, removed[order])
        atomic_save_npy(out / REASONS, reasons[order])
        atomic_write_bytes(out / SUMMARY, json.dumps(self._summary(removed, reasons, first), indent=1).encode())

    def _summary(self, removed: np.ndarray, reasons: np.ndarray, first: np.ndarray) -> dict[str, Any]:
        doc_id, text = column_reader(self.clean_paths, "doc_id"), column_reader(self.clean_paths, "text")
        summary: dict[str, Any] = {"removed": {}, "examples": {}}
        for code, name in enumerate(REASON_NAMES):
            mine = np.flatnonzero(reasons == code)
            summary["removed"][name] = len(mine)
            summary["examples"][name] = [
                quote(doc_id(int(removed[i])), text(int(removed[i])))
                + ("" if code == 2 else f" (a copy of {doc_id(int(first[i]))})")
                for i in mine[:EXAMPLES]
            ]
        return summary
