"""A prepare's manifest.json: what was read, skipped (by file and reason), filtered, redacted, deduplicated and found
in benchmarks, the tokenizer's fertility per source, and the shards; DATACARD.md renders it for people."""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import llmexp
from llmexp.data.prepared import token_dtype
from llmexp.data.shards import FORMAT_VERSION, TOKENIZER
from llmexp.errors import DataError
from llmexp.prepare.clusters import column_reader
from llmexp.prepare.pii import DETECTORS
from llmexp.prepare.shard_writer import atomic_write_bytes
from llmexp.prepare.stages import EXAMPLES, STAT_GROUPS, merge_stats, new_stats, quote
from llmexp.tokenizer import Tokenizer

LISTED_SKIPS = 1000  # skipped inputs listed in manifest.json; all of them go to SKIPPED_FILE beyond that
SKIPPED_FILE = "skipped_inputs.jsonl.gz"


def _unit_stats(plan: Any) -> dict[str, Any]:
    return json.loads(Path(plan.clean_path).with_suffix(".stats.json").read_text())


def merge_unit_stats(plans: list[Any]) -> dict[str, Any]:
    """The counts of every unit added up; skipped inputs listed per file (a split file's parts merged)."""
    total = new_stats()
    skipped: dict[tuple[str, str], dict[str, Any]] = {}
    for plan in plans:
        part = _unit_stats(plan)
        merge_stats(total, {k: Counter(v) if k in STAT_GROUPS else v for k, v in part.items()})
        name = f"{plan.source.label}:{plan.unit.key.split('@')[0]}"
        for reason, count in sorted(part["skipped"].items()):
            entry = skipped.setdefault((name, reason), {"input": name, "reason": reason, "count": 0})
            entry["count"] += count
            if reason in part["skipped_examples"]:
                entry.setdefault("example", part["skipped_examples"][reason])
    total["skipped_inputs"] = list(skipped.values())
    return total


def _reasons(entries: list[dict[str, Any]]) -> str:
    merged: dict[str, list] = {}
    for e in entries:
        merged.setdefault(e["reason"], [0, e.get("example")])[0] += e["count"]
    return "; ".join(f"{r} {n}" + (f" ({ex})" if ex else "") for r, (n, ex) in sorted(merged.items())) or "none"


def check_documents_left(stats: dict[str, Any], summary: dict[str, Any], sources: list[Any]) -> None:
    """One line naming every reason documents were lost, when none is left to train on."""
    kept = stats["documents_out"] - sum(summary["removed"].values())
    if kept > 0:
        return
    raise DataError(
        f"no training documents left: {stats['documents_read']} read from {len(sources)} source(s), "
        f"{stats['documents_out']} after cleaning, {kept} after deduplication; "
        f"skipped inputs: {_reasons(stats['skipped_inputs'])}; filtered: {dict(stats['filtered']) or 'none'}"
    )


@dataclass
class Parts:
    """What the stages produced, for the manifest."""

    plans: list[Any]
    stats: dict[str, Any]
    decision: dict[str, Any]
    benchmarks: dict[str, Any]
    stems: list[str]
    splits: dict[str, Any]
    seconds: float


def fertility(parts: Parts, sources: list[Any]) -> dict[str, Any]:
    """Characters and bytes per token of the kept documents, per source (each document counted once)."""
    totals: dict[str, Counter] = defaultdict(Counter)
    for plan, stem in zip(parts.plans, parts.stems, strict=True):
        totals[plan.source.label].update(json.loads(Path(stem + ".json").read_text()))
    result = {}
    for source in sources:
        t = totals[source.label]
        per = {k: round(t[k] / t["tokens"], 3) if t["tokens"] else None for k in ("chars", "bytes")}
        result[source.label] = {
            **{k: t[k] for k in ("documents", "chars", "bytes", "tokens")},
            "chars_per_token": per["chars"],
            "bytes_per_token": per["bytes"],
        }
    return result


def decontamination(prep: Any, parts: Parts) -> dict[str, Any] | None:
    """Per benchmark: its files, rows and n-grams, the training documents that share an n-gram with it (quoted)."""
    if not prep.decontam.enabled:
        return None
    names = sorted(parts.benchmarks)
    found = {name: {**parts.benchmarks[name], "documents_hit": 0, "ngram_hits": 0, "examples": []} for name in names}
    doc_id = column_reader([str(p.clean_path) for p in parts.plans], "doc_id")
    text = column_reader([str(p.clean_path) for p in parts.plans], "text")
    for plan in parts.plans:
        for row, bench, count in np.load(plan.hits_path).tolist():
            entry = found[names[bench]]
            entry["documents_hit"] += 1
            entry["ngram_hits"] += count
            if len(entry["examples"]) < EXAMPLES:
                doc = (plan.index << 32) | row
                entry["examples"].append(quote(doc_id(doc), text(doc)))
    return {
        "ngram": prep.decontam.ngram,
        "drop": prep.decontam.drop,
        "benchmarks_dir": prep.decontam.benchmarks_dir,
        "benchmarks": found,
        "dropped": parts.decision["removed"]["contaminated"],
    }


def _sources(prep: Any, parts: Parts) -> list[dict[str, Any]]:
    kept: Counter = Counter()
    for plan, stem in zip(parts.plans, parts.stems, strict=True):
        kept[plan.source.label] += json.loads(Path(stem + ".json").read_text())["documents"]
    sources = []
    for source in prep.sources:
        mine = [p for p in parts.plans if p.source is source]
        sources.append(
            {
                **source.describe(),
                "units": len(mine),
                "input_bytes": sum(p.unit.size_bytes for p in mine),
                "documents_kept": kept[source.label],
                "inputs": [{"key": p.unit.key, "bytes": p.unit.size_bytes} for p in mine[:1000]],
            }
        )
    return sources


def build(prep: Any, parts: Parts, tokenizer: Tokenizer) -> dict[str, Any]:
    stats = parts.stats
    counts = {
        k: (dict(sorted(v.items())) if k in STAT_GROUPS else v)
        for k, v in stats.items()
        if k not in ("examples", "skipped_inputs")
    }
    removed = parts.decision["removed"]
    dedup = {
        "exact": removed["exact"],
        "near": removed["near"],
        "kept": stats["documents_out"] - removed["exact"] - removed["near"],
    }
    if prep.dedup.bands_rows is not None:
        dedup["lsh_bands"], dedup["lsh_rows"] = prep.dedup.bands_rows
    return {
        "format_version": FORMAT_VERSION,
        "name": prep.name,
        "llmexp_version": llmexp.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dtype": token_dtype(tokenizer.vocab_size).name,
        "eos_id": tokenizer.eos_id,
        "vocab_size": tokenizer.vocab_size,
        "tokenizer": {"file": TOKENIZER, "sha256": tokenizer.sha256(), "kind": prep.spec.kind},
        "val_fraction": prep.val_fraction,
        "sources": _sources(prep, parts),
        "counts": {**counts, "dedup": dedup, "decontamination": decontamination(prep, parts)},
        "skipped_inputs": stats["skipped_inputs"],
        "fertility": fertility(parts, prep.sources),
        "examples": {"filtered": stats.get("examples", {}), "dedup": parts.decision["examples"]},
        "pii_detectors": {t: d for t, d in DETECTORS.items() if prep.pii is not None and t in prep.pii.types},
        "splits": parts.splits,
        "run": {
            "seconds": round(parts.seconds, 2),
            "units": len(parts.plans),
            "reused": dict(prep.reused),
            "executor": type(prep.executor).__name__,
            "parallelism": prep.executor.parallelism,
        },
        "config": prep.config,
    }


def page_skipped_inputs(out: Path, manifest: dict[str, Any]) -> None:
    """Beyond LISTED_SKIPS entries, the full list goes to skipped_inputs.jsonl.gz and the manifest lists the first."""
    entries = manifest["skipped_inputs"]
    if len(entries) <= LISTED_SKIPS:
        return
    atomic_write_bytes(out / SKIPPED_FILE, gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode()))
    manifest["skipped_inputs"] = {"total": len(entries), "all_in": SKIPPED_FILE, "first": entries[:LISTED_SKIPS]}
