"""The per-unit work of a prepare, run in worker processes: read + clean + redact + sign, and tokenise.

Each job writes its result under a temporary name and renames it when complete, so a killed run leaves either a
finished unit file or nothing, and a re-run does only the units that are missing. Results are deterministic: the
same unit with the same settings always gives the same bytes.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.dedup import NearDedupConfig, Signer, exact_digest
from llmexp.prepare.pii import PIIConfig
from llmexp.prepare.sources import Source, Unit
from llmexp.tokenizer import Tokenizer

STAT_GROUPS = ("skipped", "filtered", "lines_removed", "pii")
ARROW_BATCH = 512


def new_stats() -> dict[str, Any]:
    return {"documents_read": 0, "chars_read": 0, "documents_out": 0, **{group: Counter() for group in STAT_GROUPS}}


def merge_stats(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if key in STAT_GROUPS:
            total[key].update(value)
        else:
            total[key] += value


def _schema(num_perm: int) -> pa.Schema:
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("text", pa.large_string()),
            ("digest", pa.binary(16)),
            ("signature", pa.list_(pa.uint32(), num_perm) if num_perm else pa.list_(pa.uint32())),
        ]
    )


@dataclass
class CleanJob:
    source: Source
    unit: Unit
    clean: CleanConfig
    pii: PIIConfig | None
    near: NearDedupConfig | None
    out_path: str

    @property
    def stats_path(self) -> Path:
        return Path(self.out_path).with_suffix(".stats.json")


def clean_unit(job: CleanJob) -> dict[str, Any]:
    """Read one unit, clean, redact, hash and sign its documents; write them as an Arrow file (+ stats)."""
    stats = new_stats()
    signer = Signer(job.near) if job.near is not None and job.near.enabled else None
    num_perm = job.near.num_perm if signer is not None else 0
    out = Path(job.out_path)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    rows: dict[str, list] = {name: [] for name in ("doc_id", "text", "digest", "signature")}
    schema = _schema(num_perm)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:

        def flush() -> None:
            if rows["doc_id"]:
                writer.write_batch(
                    pa.record_batch([pa.array(rows[n], type=schema.field(n).type) for n in rows], schema)
                )
                for column in rows.values():
                    column.clear()

        for doc in job.source.read(job.unit, stats["skipped"]):
            stats["documents_read"] += 1
            stats["chars_read"] += len(doc.text)
            text = job.clean.clean(doc.text, stats)
            if text is None:
                continue
            if job.pii is not None:
                text = job.pii.redact(text, stats["pii"])
            stats["documents_out"] += 1
            rows["doc_id"].append(doc.doc_id)
            rows["text"].append(text)
            rows["digest"].append(exact_digest(text))
            rows["signature"].append(signer.signature(text) if signer is not None else np.zeros(0, np.uint32))
            if len(rows["doc_id"]) >= ARROW_BATCH:
                flush()
        flush()
    stats_tmp = job.stats_path.with_name(f".{job.stats_path.name}.tmp{os.getpid()}")
    stats_tmp.write_text(json.dumps(stats, sort_keys=True))
    os.replace(stats_tmp, job.stats_path)
    os.replace(tmp, out)  # the Arrow file appears last: its existence means the unit is done
    return stats


def read_unit_table(path: str | Path, columns: list[str]) -> pa.Table:
    """Columns of a cleaned unit, memory-mapped (no copy of the text)."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all().select(columns)


@dataclass
class TokenizeJob:
    unit_path: str
    keep: np.ndarray  # bool per document of the unit
    tokenizer_path: str
    dtype: str
    batch_docs: int
    out_stem: str

    @property
    def tokens_path(self) -> Path:
        return Path(self.out_stem + ".bin")

    @property
    def lengths_path(self) -> Path:
        return Path(self.out_stem + ".len.npy")


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


def tokenize_unit(job: TokenizeJob) -> int:
    """Tokenise the kept documents of one unit into `<stem>.bin` + `<stem>.len.npy`; returns the token count."""
    tokenizer = _tokenizer(job.tokenizer_path)
    dtype = np.dtype(job.dtype)
    texts = read_unit_table(job.unit_path, ["text"]).column("text")
    kept = np.flatnonzero(job.keep)
    tmp = job.tokens_path.with_name(f".{job.tokens_path.name}.tmp{os.getpid()}")
    all_lengths = []
    with tmp.open("wb") as handle:
        for start in range(0, len(kept), job.batch_docs):
            batch = texts.take(pa.array(kept[start : start + job.batch_docs])).to_pylist()
            flat, lengths = encode_documents(tokenizer, batch, dtype)
            handle.write(flat.tobytes())
            all_lengths.append(lengths)
    lengths = np.concatenate(all_lengths) if all_lengths else np.zeros(0, dtype=np.int64)
    os.replace(tmp, job.tokens_path)
    lengths_tmp = job.lengths_path.with_name(f".{job.lengths_path.name}.tmp{os.getpid()}.npy")
    np.save(lengths_tmp, lengths)
    os.replace(lengths_tmp, job.lengths_path)  # written last: marks the unit as tokenised
    return int(lengths.sum())
