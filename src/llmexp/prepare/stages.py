"""The per-unit work of a prepare as jobs that run anywhere: in this process, in worker processes, in SLURM tasks.

A job's `done()` looks at its output files; `run()` writes them under temporary names (`.<name>.tmp<pid>`) and
renames each when complete, the file that marks completion last. A killed job leaves its finished output or
nothing but temporaries (cleared by `remove_temporaries` before anything else runs), and every job is
deterministic, so the same unit with the same settings gives the same bytes wherever and however often it runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from llmexp.data.corpus import split_of
from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.dedup import DedupConfig, NearDedupConfig, Signer, exact_digest, unit_keys
from llmexp.prepare.pii import PIIConfig
from llmexp.prepare.shard_writer import atomic_save_npy, atomic_write_bytes, temporary
from llmexp.prepare.sources import Source, Unit
from llmexp.prepare.streams import Skipped
from llmexp.tokenizer import Tokenizer

STAT_GROUPS = ("skipped", "filtered", "lines_removed", "pii")
ARROW_BATCH = 512
EXAMPLES = 3  # documents quoted per drop reason in the data card
REMOVED, REASONS = "removed.npy", "reasons.npy"  # a deduplication decision: removed ids, sorted, and why


class Job(Protocol):
    def done(self) -> bool: ...

    def run(self) -> None: ...


def run_job(job: Job) -> None:
    if not job.done():
        job.run()


@dataclass
class Chain:
    """Jobs run in order as one (the steps of one unit, or stages that need no barrier between them)."""

    jobs: list[Any]

    def done(self) -> bool:
        return all(job.done() for job in self.jobs)

    def run(self) -> None:
        for job in self.jobs:
            run_job(job)


def remove_temporaries(root: Path) -> int:
    """Delete the temporaries that killed jobs left under root; only safe while no job of this output runs."""
    stale = [p for p in root.rglob(".*.tmp*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def new_stats() -> dict[str, Any]:
    return {"documents_read": 0, "chars_read": 0, "documents_out": 0, **{group: Counter() for group in STAT_GROUPS}}


def merge_stats(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if key in STAT_GROUPS:
            total[key].update(value)
        elif key == "examples":
            for reason, quotes in value.items():
                total.setdefault("examples", {}).setdefault(reason, [])
                total["examples"][reason] = (total["examples"][reason] + quotes)[:EXAMPLES]
        elif key != "skipped_examples":
            total[key] += value


def quote(doc_id: str, text: str, chars: int = 160) -> str:
    """A document as the data card shows it: its id and the start of its text on one line."""
    start = " ".join(text[:chars].split())
    return f"{doc_id}: {start}{'…' if len(text) > chars else ''}"


def read_unit_table(path: str | Path, columns: list[str]) -> pa.Table:
    """Columns of a cleaned unit, memory-mapped (no copy of the text)."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all().select(columns)


def _schema(num_perm: int) -> pa.Schema:
    signature = pa.list_(pa.uint32(), num_perm) if num_perm else pa.list_(pa.uint32())
    return pa.schema(
        [("doc_id", pa.string()), ("text", pa.large_string()), ("digest", pa.binary(16)), ("signature", signature)]
    )


def _signatures(signatures: list[np.ndarray], kind: pa.DataType) -> pa.Array:
    """One list array from the signatures' flat values (a list of numpy arrays would make pyarrow import pandas)."""
    flat = pa.array(np.concatenate(signatures) if signatures else np.zeros(0, np.uint32), type=pa.uint32())
    if isinstance(kind, pa.FixedSizeListType):
        return pa.FixedSizeListArray.from_arrays(flat, kind.list_size)
    return pa.ListArray.from_arrays(pa.array(np.zeros(len(signatures) + 1, np.int32)), flat)


@dataclass
class CleanJob:
    """Read one unit; clean, redact, hash and sign its documents -> <unit>.arrow (+ .stats.json)."""

    source: Source
    unit: Unit
    clean: CleanConfig
    pii: PIIConfig | None
    near: NearDedupConfig | None
    out_path: str

    @property
    def stats_path(self) -> Path:
        return Path(self.out_path).with_suffix(".stats.json")

    def done(self) -> bool:
        return Path(self.out_path).exists()

    def _documents(self, stats: dict[str, Any]) -> Any:
        """(doc id, cleaned text) of the documents that survive; counts and drop examples go to stats."""
        skipped = Skipped()
        examples: dict[str, list[str]] = {}
        for doc in self.source.read(self.unit, skipped):
            stats["documents_read"] += 1
            stats["chars_read"] += len(doc.text)
            text, reason = self.clean.clean_or_reason(doc.text, stats)
            if text is None:
                if len(examples.setdefault(reason, [])) < EXAMPLES:
                    examples[reason].append(quote(doc.doc_id, doc.text))
                continue
            if self.pii is not None:
                text = self.pii.redact(text, stats["pii"])
            stats["documents_out"] += 1
            yield doc.doc_id, text
        stats["skipped"], stats["skipped_examples"], stats["examples"] = skipped.counts, skipped.examples, examples

    def run(self) -> None:
        stats = new_stats()
        signer = Signer(self.near) if self.near is not None and self.near.enabled else None
        schema = _schema(self.near.num_perm if signer is not None else 0)
        out = Path(self.out_path)
        tmp = temporary(out)
        rows: dict[str, list] = {name: [] for name in schema.names}
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:

            def flush() -> None:
                if rows["doc_id"]:
                    arrays = [pa.array(rows[n], type=schema.field(n).type) for n in ("doc_id", "text", "digest")]
                    arrays.append(_signatures(rows["signature"], schema.field("signature").type))
                    writer.write_batch(pa.record_batch(arrays, schema))
                    for column in rows.values():
                        column.clear()

            for doc_id, text in self._documents(stats):
                rows["doc_id"].append(doc_id)
                rows["text"].append(text)
                rows["digest"].append(exact_digest(text))
                rows["signature"].append(signer.signature(text) if signer is not None else np.zeros(0, np.uint32))
                if len(rows["doc_id"]) >= ARROW_BATCH:
                    flush()
            flush()
        atomic_write_bytes(self.stats_path, json.dumps(stats, sort_keys=True).encode())
        os.replace(tmp, out)  # the Arrow file appears last: its existence means the unit is done


@dataclass
class KeysJob:
    """One unit's deduplication keys (see dedup.unit_keys) -> <unit>.npy."""

    unit_index: int
    clean_path: str
    dedup: DedupConfig
    out_path: str

    def done(self) -> bool:
        return Path(self.out_path).exists()

    def run(self) -> None:
        table = read_unit_table(self.clean_path, ["digest", "signature"])
        n = table.num_rows
        digests = np.frombuffer(b"".join(table.column("digest").to_pylist()), np.uint8).reshape(n, 16)
        signatures = None
        if self.dedup.near.enabled and n:
            flat = table.column("signature").combine_chunks().values.to_numpy()
            signatures = flat.reshape(n, self.dedup.near.num_perm)
        atomic_save_npy(Path(self.out_path), unit_keys(self.unit_index, digests, signatures, self.dedup))


def kept_rows(decision_dir: str, unit_index: int, rows: int) -> np.ndarray:
    """Bool per document of a unit: not removed by the deduplication/decontamination decision."""
    removed = np.load(Path(decision_dir) / REMOVED, mmap_mode="r")
    lo, hi = np.uint64(unit_index) << np.uint64(32), np.uint64(unit_index + 1) << np.uint64(32)
    mine = np.asarray(removed[np.searchsorted(removed, lo) : np.searchsorted(removed, hi)])
    keep = np.ones(rows, dtype=bool)
    keep[(mine - lo).astype(np.int64)] = False
    return keep


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str) -> Tokenizer:
    return Tokenizer.load(path)


def encode_documents(tokenizer: Tokenizer, texts: list[str], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(token ids of all texts, each followed by EOS; the length of each with its EOS).

    `tokenizers` turns the EOS token's text into its id even inside a document; it is removed from the text first,
    so EOS ids in a shard are exactly the document boundaries.
    """
    marker = tokenizer.eos_token
    clean = [t.replace(marker, "") if marker in t else t for t in texts]
    # encode_batch_fast: the same ids as encode_batch, without computing character offsets we do not need.
    encoded = [e.ids for e in tokenizer.backend.encode_batch_fast(clean, add_special_tokens=False)]
    lengths = np.fromiter((len(ids) + 1 for ids in encoded), dtype=np.int64, count=len(encoded))
    flat = np.empty(int(lengths.sum()), dtype=dtype)
    pos = 0
    for ids, length in zip(encoded, lengths.tolist(), strict=True):
        flat[pos : pos + length - 1] = ids
        flat[pos + length - 1] = tokenizer.eos_id
        pos += length
    return flat, lengths


def repeat_count(doc_id: str, weight: float, seed: int) -> int:
    """How many times a kept document goes into the shards: floor(weight), plus one with the fractional part's
    probability (decided by a hash of the id, so it is the same on every run)."""
    whole = math.floor(weight)
    fraction = int.from_bytes(hashlib.sha256(f"repeat{seed}|{doc_id}".encode()).digest()[:8], "big") / 2**64
    return whole + int(fraction < weight - whole)


@dataclass
class TokenizeJob:
    """The kept documents of one unit -> <stem>.bin (token ids), <stem>.json (characters, bytes and tokens, for
    fertility) and <stem>.docs.npy (length, split, repeat count per document; written last: marks completion)."""

    unit_path: str
    unit_index: int
    decision_dir: str
    tokenizer_path: str
    dtype: str
    batch_docs: int
    out_stem: str
    val_fraction: float
    weight: float
    seed: int

    def done(self) -> bool:
        return Path(self.out_stem + ".docs.npy").exists()

    def run(self) -> None:
        tokenizer = _tokenizer(self.tokenizer_path)
        table = read_unit_table(self.unit_path, ["doc_id", "text"])
        kept = np.flatnonzero(kept_rows(self.decision_dir, self.unit_index, table.num_rows))
        tokens_path = Path(self.out_stem + ".bin")
        tmp = temporary(tokens_path)
        lengths, ids, counts = [np.zeros(0, dtype=np.int64)], [], Counter()
        with tmp.open("wb") as handle:
            for start in range(0, len(kept), self.batch_docs):
                rows = pa.array(kept[start : start + self.batch_docs])
                texts = table.column("text").take(rows).to_pylist()
                flat, batch_lengths = encode_documents(tokenizer, texts, np.dtype(self.dtype))
                handle.write(flat.tobytes())
                lengths.append(batch_lengths)
                ids += table.column("doc_id").take(rows).to_pylist()
                counts.update(chars=sum(map(len, texts)), bytes=sum(len(t.encode("utf-8")) for t in texts))
        os.replace(tmp, tokens_path)
        length = np.concatenate(lengths)
        counts.update(documents=len(ids), tokens=int(length.sum()) - len(ids))
        atomic_write_bytes(Path(self.out_stem + ".json"), json.dumps(dict(counts), sort_keys=True).encode())
        split = [split_of(d, self.val_fraction) == "val" for d in ids]
        repeats = [repeat_count(d, self.weight, self.seed) for d in ids]
        docs = np.stack([length, np.array(split, dtype=np.int64), np.array(repeats, dtype=np.int64)], axis=1)
        atomic_save_npy(Path(self.out_stem + ".docs.npy"), docs.reshape(-1, 3))
