"""Benchmark decontamination: word n-gram overlap (13 by default, as GPT-3 did) between training documents and
every benchmark file, reported per benchmark in the manifest, optionally dropping the documents that overlap.

The benchmark files are the ones `llmexp-eval` reads: every data file under `benchmarks_dir`, which defaults to
eval's `data_dir` ($LLMEXP_BENCHMARKS_DIR, else <root>/data/benchmarks), plus any listed in `files`. A benchmark
is named by its top-level entry there (file name without suffixes, or folder name). Every string in a row counts
(question, choices, answer); rows shorter than `ngram` words cannot be matched.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from llmexp.errors import ConfigError, DataError
from llmexp.prepare.readers import ReadOptions, file_format, json_rows, sniff
from llmexp.prepare.shard_writer import atomic_save_npy, atomic_write_bytes
from llmexp.prepare.stages import read_unit_table
from llmexp.prepare.streams import Skipped, open_binary

DATA_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".parquet")
_WORD_RE = re.compile(r"\w+")
_MIX = np.uint64(0x9E3779B97F4A7C15)
NGRAMS, NAMES = "ngrams.npy", "benchmarks.json"


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """The set of 64-bit hashes of the text's lower-cased word n-grams (none if it has fewer than n words)."""
    words = _WORD_RE.findall(text.lower())
    if len(words) < n:
        return np.zeros(0, dtype=np.uint64)
    ids = np.fromiter((xxhash.xxh64_intdigest(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words))
    count = len(ids) - n + 1
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = (h ^ ids[k : k + count]) * _MIX
    return np.unique(h)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def benchmark_rows(path: Path) -> Iterator[Any]:
    """Rows of a benchmark file: json/jsonl (items or lines), csv/tsv (lists of cells), parquet (dicts)."""
    name = path.name.lower().removesuffix(".gz").removesuffix(".zst")
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
        return
    sniffed = sniff(path, Skipped())
    if sniffed is None:
        return
    with open_binary(path) as handle:
        if name.endswith((".csv", ".tsv")):
            text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
            quoting = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if name.endswith(".tsv") else {}
            yield from csv.reader(text, **quoting)
        elif file_format(path) in ("json", "jsonl"):
            options = ReadOptions(max_line_bytes=1 << 30, decode_errors="replace")
            yield from (row for _, row in json_rows(handle, sniffed[1], options, Skipped(), (0, None)))


@dataclass
class DecontamConfig:
    """See the module docstring; `drop` removes overlapping training documents instead of only reporting them."""

    enabled: bool = True
    ngram: int = 13
    benchmarks_dir: str | None = None
    files: list[str] = field(default_factory=list)
    drop: bool = False

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ConfigError(f"decontam.ngram must be >= 1, got {self.ngram}")
        self.files = [str(f) for f in self.files]
        missing = [f for f in self.files if not Path(f).expanduser().is_file()]
        if missing:
            raise ConfigError(f"decontam.files: no such file: {missing[0]}")

    def benchmarks(self) -> dict[str, list[Path]]:
        """Benchmark name -> its files (sorted), from benchmarks_dir and files."""
        found: dict[str, list[Path]] = {}
        root = Path(self.benchmarks_dir).expanduser() if self.benchmarks_dir else None
        if root is not None and root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file() and _is_data(p)):
                top = path.relative_to(root).parts[0]
                found.setdefault(_stem(top), []).append(path)
        for name in self.files:
            path = Path(name).expanduser()
            found.setdefault(_stem(path.name), []).append(path)
        return found


def _is_data(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").removesuffix(".zst").endswith(DATA_SUFFIXES)


def _stem(name: str) -> str:
    for suffix in (".gz", ".zst", *DATA_SUFFIXES):
        name = name.removesuffix(suffix)
    return name


def fingerprint(benchmarks: dict[str, list[Path]]) -> list:
    return [
        (name, [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files])
        for name, files in sorted(benchmarks.items())
    ]


def build_index(benchmarks: dict[str, list[Path]], n: int, out_dir: Path) -> dict[str, Any]:
    """Every benchmark's n-grams -> out_dir/ngrams.npy ((hash, benchmark) rows sorted by hash) + benchmarks.json."""
    rows, report = [], {}
    for index, (name, files) in enumerate(sorted(benchmarks.items())):
        hashes, count = [], 0
        for path in files:
            try:
                for row in benchmark_rows(path):
                    count += 1
                    hashes.append(ngram_hashes(" ".join(_strings(row)), n))
            except (OSError, ValueError, csv.Error) as err:
                raise DataError(f"decontam: cannot read benchmark file {path}: {err}") from err
        unique = np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, dtype=np.uint64)
        rows.append(np.stack([unique, np.full(len(unique), index, dtype=np.uint64)], axis=1))
        report[name] = {"files": [str(p) for p in files], "rows": count, "ngrams": len(unique)}
    table = np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.uint64)
    atomic_save_npy(out_dir / NGRAMS, table[np.argsort(table[:, 0], kind="stable")])
    atomic_write_bytes(out_dir / NAMES, json.dumps(report, indent=1).encode())
    return report


@dataclass
class HitsJob:
    """Benchmark n-grams found in one unit's documents -> <unit>.npy: (row, benchmark, n-grams) per hit."""

    clean_path: str
    index_dir: str
    ngram: int
    out_path: str

    def done(self) -> bool:
        return Path(self.out_path).exists()

    def run(self) -> None:
        table = np.load(Path(self.index_dir) / NGRAMS, mmap_mode="r")
        keys = np.asarray(table[:, 0])
        hits = []
        texts = read_unit_table(self.clean_path, ["text"]).column("text")
        for row, text in enumerate(texts.to_pylist() if len(keys) else []):
            grams = ngram_hashes(text, self.ngram)
            lo, hi = np.searchsorted(keys, grams, "left"), np.searchsorted(keys, grams, "right")
            matched = hi > lo
            if not matched.any():
                continue
            found = np.concatenate([table[a:b, 1] for a, b in zip(lo[matched], hi[matched], strict=True)])
            for bench, count in zip(*np.unique(found.astype(np.int64), return_counts=True), strict=True):
                hits.append((row, int(bench), int(count)))
        atomic_save_npy(Path(self.out_path), np.array(hits, dtype=np.int64).reshape(-1, 3))
