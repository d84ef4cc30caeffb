"""The last stages of a prepare: train the tokenizer on the kept training documents (one job), and pack the
tokenised units into shards (one job per shard, in any order, anywhere: each computes the same emission order)."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmexp.data.corpus import split_of
from llmexp.data.prepared import SPLITS
from llmexp.data.shards import shard_stem
from llmexp.errors import ConfigError, DataError
from llmexp.prepare.shard_writer import atomic_write_bytes, shard_complete, write_shard
from llmexp.prepare.stages import kept_rows, read_unit_table
from llmexp.tokenizer import TokenizerSpec

log = logging.getLogger(__name__)


@dataclass
class PackConfig:
    """How token shards are cut: about `shard_tokens` tokens each (whole documents); `batch_docs` per encode call."""

    shard_tokens: int = 100_000_000
    batch_docs: int = 256

    def __post_init__(self) -> None:
        if self.shard_tokens < 1 or self.batch_docs < 1:
            raise ConfigError("pack.shard_tokens and pack.batch_docs must be >= 1")


@dataclass
class TrainTokenizerJob:
    """The tokenizer, trained on the kept training documents in corpus order -> tokenizer.json (+ its key)."""

    spec: TokenizerSpec
    clean_paths: list[str]
    decision_dir: str
    val_fraction: float
    path: str
    key_path: str
    key: str

    def done(self) -> bool:
        key_path = Path(self.key_path)
        return Path(self.path).exists() and key_path.exists() and key_path.read_text() == self.key

    def _train_rows(self) -> list[list[int]]:
        """Per unit, the rows of its kept documents that fall in the train split."""
        rows = []
        for unit, path in enumerate(self.clean_paths):
            table = read_unit_table(path, ["doc_id"])
            kept = np.flatnonzero(kept_rows(self.decision_dir, unit, table.num_rows))
            ids = table.column("doc_id").take(kept).to_pylist()
            rows.append([int(k) for k, d in zip(kept, ids, strict=True) if split_of(d, self.val_fraction) == "train"])
        return rows

    def _texts(self, rows: list[list[int]]) -> Any:
        for path, mine in zip(self.clean_paths, rows, strict=True):
            texts = read_unit_table(path, ["text"]).column("text")
            for start in range(0, len(mine), 1024):
                yield from texts.take(mine[start : start + 1024]).to_pylist()

    def run(self) -> None:
        rows = self._train_rows()
        if not any(rows):
            raise DataError(
                f"no training documents left: every kept document fell in the val split (val_fraction="
                f"{self.val_fraction}); lower val_fraction or give more data"
            )
        log.info(
            "training the %s tokenizer (vocab %d) on the kept training documents", self.spec.kind, self.spec.vocab_size
        )
        tokenizer = self.spec.train(self._texts(rows))
        atomic_write_bytes(Path(self.path), tokenizer.to_str().encode("utf-8"))
        atomic_write_bytes(Path(self.key_path), self.key.encode())


def emission_order(docs: list[np.ndarray], split: int) -> np.ndarray:
    """(unit, document, length) rows in shard order: every pass over the units adds the documents whose repeat
    count exceeds the pass number, so repeated documents are spread over the split, not adjacent."""
    rows = []
    max_repeats = max((int(d[:, 2].max()) for d in docs if len(d)), default=0)
    for repeat in range(max_repeats):
        for unit, d in enumerate(docs):
            chosen = np.flatnonzero((d[:, 1] == split) & (d[:, 2] > repeat))
            rows.append(np.stack([np.full(len(chosen), unit), chosen, d[chosen, 0]], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def shard_bounds(order: np.ndarray, shard_tokens: int) -> list[tuple[int, int]]:
    """(first row, end row) of each shard: a new shard starts where the running token count crosses a multiple."""
    if not len(order):
        return []
    cut = np.flatnonzero(np.diff(np.cumsum(order[:, 2]) // shard_tokens, prepend=0)) + 1
    bounds = [0, *[int(c) for c in cut if c < len(order)], len(order)]
    return list(itertools.pairwise(bounds))


def load_docs(stems: list[str]) -> list[np.ndarray]:
    return [np.load(stem + ".docs.npy") for stem in stems]


def _open_tokens(path: str, dtype: np.dtype) -> np.ndarray:
    """A unit's token file, memory-mapped (numpy cannot map an empty file: a unit with no document left)."""
    return np.memmap(path, dtype=dtype, mode="r") if Path(path).stat().st_size else np.zeros(0, dtype=dtype)


@dataclass
class PackJob:
    """One shard: rows [start, stop) of its split's emission order -> shards/<split>-NNNNN.{bin,idx.npy}, and its
    record (file, tokens, documents, sha256) -> <records_dir>/<stem>.json, written last."""

    stems: list[str]
    split: str
    index: int
    start: int
    stop: int
    dtype: str
    directory: str
    records_dir: str

    @property
    def record_path(self) -> Path:
        return Path(self.records_dir) / f"{shard_stem(self.split, self.index)}.json"

    def done(self) -> bool:
        tokens = json.loads(self.record_path.read_text())["tokens"] if self.record_path.exists() else -1
        return tokens >= 0 and shard_complete(
            Path(self.directory), shard_stem(self.split, self.index), tokens, np.dtype(self.dtype)
        )

    def run(self) -> None:
        docs = load_docs(self.stems)
        order = emission_order(docs, SPLITS.index(self.split))[self.start : self.stop]
        dtype = np.dtype(self.dtype)
        offsets = [np.concatenate([[0], np.cumsum(d[:, 0])]) for d in docs]
        tokens = [_open_tokens(stem + ".bin", dtype) for stem in self.stems]
        pieces = [tokens[u][offsets[u][d] : offsets[u][d] + n] for u, d, n in order]
        record = write_shard(Path(self.directory), shard_stem(self.split, self.index), pieces, dtype)
        atomic_write_bytes(self.record_path, json.dumps(record).encode())
