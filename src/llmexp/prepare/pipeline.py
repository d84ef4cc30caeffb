"""`llmexp-prepare`: raw documents -> cleaned, redacted, deduplicated -> tokenizer -> packed token shards.

Stages and where their results live (under <output>/work/, keyed by a hash of every setting that shapes them):
1. clean (parallel, per unit)   read, normalise, filter, redact, hash, sign -> clean-<key>/<unit>.arrow
2. dedup (one ordered pass)     exact and near-duplicate decisions; split and repeat count of each kept document
3. tokenizer                    trained on the kept training documents (or loaded) -> <output>/tokenizer.json
4. tokenize (parallel, per unit)                                               -> tokens-<key>/<unit>.bin
5. pack                         documents in a fixed order into shards         -> <output>/shards/
6. manifest.json and DATACARD.md, written last.
A killed run leaves only complete files behind (temporary names, then rename); re-running skips every unit and shard
already there and, since each stage is deterministic, writes shards byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

import llmexp
from llmexp.data.corpus import split_of
from llmexp.data.prepared import SPLITS, token_dtype
from llmexp.data.shards import DATACARD, FORMAT_VERSION, MANIFEST, SHARDS_DIR, TOKENIZER, shard_stem
from llmexp.errors import ConfigError, DataError
from llmexp.prepare import datacard, stages
from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.dedup import DedupConfig, Deduplicator
from llmexp.prepare.pii import PIIConfig
from llmexp.prepare.shard_writer import atomic_write_bytes, shard_complete, shard_record, write_shard
from llmexp.prepare.sources import Mixture, Source, Unit, as_sources
from llmexp.prepare.workers import Workers
from llmexp.tokenizer import Tokenizer, TokenizerSpec

log = logging.getLogger(__name__)


@dataclass
class PackConfig:
    """How token shards are cut: about `shard_tokens` tokens each (whole documents); `batch_docs` per encode call."""

    shard_tokens: int = 100_000_000
    batch_docs: int = 256

    def __post_init__(self) -> None:
        if self.shard_tokens < 1 or self.batch_docs < 1:
            raise ConfigError("pack.shard_tokens and pack.batch_docs must be >= 1")


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fraction(doc_id: str, salt: str) -> float:
    return int.from_bytes(hashlib.sha256(f"{salt}|{doc_id}".encode()).digest()[:8], "big") / 2**64


def repeat_count(doc_id: str, weight: float, seed: int) -> int:
    """How many times a kept document goes into the shards: floor(weight), plus one with the fractional part's
    probability (decided by a hash of the id, so it is the same on every run)."""
    whole = math.floor(weight)
    return whole + int(_fraction(doc_id, f"repeat{seed}") < weight - whole)


def _open_tokens(path: str, dtype: np.dtype) -> np.ndarray:
    """A unit's token file, memory-mapped (numpy cannot map an empty file: a unit with no document left)."""
    return np.memmap(path, dtype=dtype, mode="r") if Path(path).stat().st_size else np.zeros(0, dtype=dtype)


@dataclass
class UnitPlan:
    """One unit's documents after deduplication: which survive, their split and repeat count."""

    source: Source
    unit: Unit
    clean_path: Path
    keep: np.ndarray | None = None  # bool per cleaned document
    split: np.ndarray | None = None  # 0 train / 1 val, per kept document
    repeats: np.ndarray | None = None  # per kept document


class Preparation:
    """One prepare run; see the module docstring for the stages."""

    def __init__(
        self,
        source: Source | Mixture,
        clean: CleanConfig,
        pii: PIIConfig | None,
        dedup: DedupConfig,
        tokenizer: TokenizerSpec,
        pack: PackConfig,
        output_dir: str | Path,
        name: str = "dataset",
        val_fraction: float = 0.01,
        seed: int = 0,
        num_workers: int = 2,
        progress: bool = True,
        keep_work: bool = True,
        config: dict[str, Any] | None = None,
    ):
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.sources = as_sources(source)
        self.clean, self.pii, self.dedup, self.spec, self.pack = clean, pii, dedup, tokenizer, pack
        self.out, self.name = Path(output_dir), name
        self.val_fraction, self.seed, self.keep_work, self.config = val_fraction, seed, keep_work, config
        self.workers = Workers(num_workers, progress)
        self.reused: Counter = Counter()
        near = dedup.near
        signing = (near.enabled, near.num_perm, near.shingle_size, near.seed) if near.enabled else None
        reading = [{k: v for k, v in s.describe().items() if k != "weight"} for s in self.sources]
        self.clean_key = _key("clean", reading, asdict(clean), asdict(pii) if pii else None, signing)
        self.dedup_key = _key(self.clean_key, dedup.to_dict())
        self.split_key = _key(self.dedup_key, val_fraction, seed, [s.weight for s in self.sources])

    # -- stage 1 ---------------------------------------------------------------------------------------------
    def run_clean(self, plans: list[UnitPlan]) -> dict[str, Any]:
        near = self.dedup.near if self.dedup.near.enabled else None
        jobs = [
            stages.CleanJob(p.source, p.unit, self.clean, self.pii, near, str(p.clean_path))
            for p in plans
            if not p.clean_path.exists()
        ]
        self.reused["clean_units"] = len(plans) - len(jobs)
        self.workers.map(stages.clean_unit, jobs, "clean")
        total = stages.new_stats()
        for plan in plans:
            part = json.loads(plan.clean_path.with_suffix(".stats.json").read_text())
            stages.merge_stats(total, {k: Counter(v) if k in stages.STAT_GROUPS else v for k, v in part.items()})
        return total

    # -- stage 2 ---------------------------------------------------------------------------------------------
    def run_dedup(self, plans: list[UnitPlan]) -> dict[str, Any]:
        dedup = Deduplicator(self.dedup)
        counts: Counter = Counter()
        for plan in plans:
            table = stages.read_unit_table(plan.clean_path, ["doc_id", "digest", "signature"])
            doc_ids = table.column("doc_id").to_pylist()
            digests = table.column("digest").to_pylist()
            signatures = None
            if dedup.signer is not None and len(doc_ids):
                flat = table.column("signature").combine_chunks().values.to_numpy()
                signatures = flat.reshape(len(doc_ids), self.dedup.near.num_perm)
            keep = np.ones(len(doc_ids), dtype=bool)
            for i, digest in enumerate(digests):
                verdict = dedup.check(digest, None if signatures is None else signatures[i])
                if verdict is not None:
                    keep[i] = False
                    counts[verdict] += 1
            kept_ids = [d for d, k in zip(doc_ids, keep, strict=True) if k]
            plan.keep = keep
            plan.split = np.array([split_of(d, self.val_fraction) == "val" for d in kept_ids], dtype=np.int8)
            plan.repeats = np.array([repeat_count(d, plan.source.weight, self.seed) for d in kept_ids], dtype=np.int32)
        kept = int(sum(int(p.keep.sum()) for p in plans))
        result = {"exact": counts["exact"], "near": counts["near"], "kept": kept}
        if dedup.bands_rows is not None:
            result["lsh_bands"], result["lsh_rows"] = dedup.bands_rows
        return result

    # -- stage 3 ---------------------------------------------------------------------------------------------
    def _training_texts(self, plans: list[UnitPlan]) -> Iterator[str]:
        for plan in plans:
            texts = stages.read_unit_table(plan.clean_path, ["text"]).column("text")
            kept = np.flatnonzero(plan.keep)[plan.split == 0]
            for start in range(0, len(kept), 1024):
                yield from texts.take(kept[start : start + 1024]).to_pylist()

    def run_tokenizer(self, plans: list[UnitPlan], work: Path) -> Tokenizer:
        key = _key(self.split_key, self.spec.fingerprint())
        path, key_path = self.out / TOKENIZER, work / "tokenizer.key"
        if path.exists() and key_path.exists() and key_path.read_text() == key:
            self.reused["tokenizer"] = 1
            return Tokenizer.load(path)
        log.info(
            "training the %s tokenizer (vocab %d) on the kept training documents", self.spec.kind, self.spec.vocab_size
        )
        tokenizer = self.spec.train(self._training_texts(plans))
        atomic_write_bytes(path, tokenizer.to_str().encode("utf-8"))
        atomic_write_bytes(key_path, key.encode())
        return tokenizer

    # -- stage 4 ---------------------------------------------------------------------------------------------
    def run_tokenize(self, plans: list[UnitPlan], tokenizer: Tokenizer, work: Path) -> list[str]:
        directory = work / f"tokens-{_key(self.dedup_key, tokenizer.sha256())}"
        directory.mkdir(parents=True, exist_ok=True)
        dtype = token_dtype(tokenizer.vocab_size).name
        stems = [str(directory / p.unit.uid) for p in plans]
        jobs = [
            stages.TokenizeJob(str(p.clean_path), p.keep, str(self.out / TOKENIZER), dtype, self.pack.batch_docs, stem)
            for p, stem in zip(plans, stems, strict=True)
            if not Path(stem + ".len.npy").exists()
        ]
        self.reused["tokenized_units"] = len(plans) - len(jobs)
        self.workers.map(stages.tokenize_unit, jobs, "tokenize")
        return stems

    # -- stage 5 ---------------------------------------------------------------------------------------------
    def _emission_order(self, plans: list[UnitPlan], lengths: list[np.ndarray], split: int) -> np.ndarray:
        """(unit, document, length) rows in shard order: every pass over the units adds the documents whose repeat
        count exceeds the pass number, so repeated documents are spread over the split, not adjacent."""
        rows = []
        max_repeats = max((int(p.repeats.max()) for p in plans if len(p.repeats)), default=0)
        for repeat in range(max_repeats):
            for u, plan in enumerate(plans):
                docs = np.flatnonzero((plan.split == split) & (plan.repeats > repeat))
                rows.append(np.stack([np.full(len(docs), u), docs, lengths[u][docs]], axis=1))
        return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)

    def run_pack(self, plans: list[UnitPlan], stems: list[str], dtype: np.dtype, tokens_key: str) -> dict[str, Any]:
        directory = self.out / SHARDS_DIR
        key = _key(tokens_key, self.split_key, self.pack.shard_tokens, dtype.name)
        key_path = directory / ".key"
        if directory.exists() and (not key_path.exists() or key_path.read_text() != key):
            shutil.rmtree(directory)  # shards of other settings: they would be silently mixed in
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(key_path, key.encode())
        lengths = [np.load(stem + ".len.npy") for stem in stems]
        offsets = [np.concatenate([[0], np.cumsum(x)]) for x in lengths]
        splits = {}
        for code, split in enumerate(SPLITS):
            order = self._emission_order(plans, lengths, code)
            cut = np.flatnonzero(np.diff(np.cumsum(order[:, 2]) // self.pack.shard_tokens, prepend=0)) + 1
            bounds = [0, *[int(c) for c in cut if c < len(order)], len(order)] if len(order) else [0]
            records = []
            for index, (a, b) in enumerate(itertools.pairwise(bounds)):
                stem = shard_stem(split, index)
                if shard_complete(directory, stem, int(order[a:b, 2].sum()), dtype):
                    self.reused["shards"] += 1
                    records.append(shard_record(directory, stem))
                    continue
                tokens = [_open_tokens(stem_ + ".bin", dtype) for stem_ in stems]
                pieces = [tokens[u][offsets[u][d] : offsets[u][d] + n] for u, d, n in order[a:b]]
                records.append(write_shard(directory, stem, pieces, dtype))
            unique = sum(int((p.split == code).sum()) for p in plans)
            splits[split] = {
                "documents": len(order),
                "unique_documents": unique,
                "tokens": int(order[:, 2].sum()),
                "shards": records,
            }
        return splits

    # -- the run ---------------------------------------------------------------------------------------------
    def plan_units(self, work: Path) -> list[UnitPlan]:
        directory = work / f"clean-{self.clean_key}"
        directory.mkdir(parents=True, exist_ok=True)
        plans = []
        for source in self.sources:
            for unit in source.units():
                plans.append(UnitPlan(source, unit, directory / f"{unit.uid}.arrow"))
        return plans

    def run(self) -> dict[str, Any]:
        started = time.time()
        self.out.mkdir(parents=True, exist_ok=True)
        work = self.out / "work"
        with FileLock(str(self.out / ".prepare.lock")), self.workers:
            plans = self.plan_units(work)
            log.info("%d sources, %d units -> %s", len(self.sources), len(plans), self.out)
            stats = self.run_clean(plans)
            dedup_counts = self.run_dedup(plans)
            if not any(int((p.split == 0).sum()) for p in plans):
                raise DataError(
                    f"no training documents left: {stats['documents_read']} read, {stats['documents_out']} after "
                    f"cleaning, {dedup_counts['kept']} after deduplication (filtered: {dict(stats['filtered'])})"
                )
            tokenizer = self.run_tokenizer(plans, work)
            dtype = token_dtype(tokenizer.vocab_size)
            stems = self.run_tokenize(plans, tokenizer, work)
            splits = self.run_pack(plans, stems, dtype, Path(stems[0]).parent.name)
            manifest = self.manifest(plans, stats, dedup_counts, tokenizer, dtype, splits, time.time() - started)
            atomic_write_bytes(self.out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=False).encode())
            atomic_write_bytes(self.out / DATACARD, datacard.render(manifest).encode("utf-8"))
            if not self.keep_work:
                shutil.rmtree(work)
        log.info("prepared %s: %s", self.out, {s: v["tokens"] for s, v in splits.items()})
        return manifest

    def manifest(
        self,
        plans: list[UnitPlan],
        stats: dict[str, Any],
        dedup_counts: dict[str, Any],
        tokenizer: Tokenizer,
        dtype: np.dtype,
        splits: dict[str, Any],
        seconds: float,
    ) -> dict[str, Any]:
        sources = []
        for source in self.sources:
            mine = [p for p in plans if p.source is source]
            sources.append(
                {
                    **source.describe(),
                    "units": len(mine),
                    "input_bytes": sum(p.unit.size_bytes for p in mine),
                    "documents_kept": sum(int(p.keep.sum()) for p in mine),
                    "inputs": [{"key": p.unit.key, "bytes": p.unit.size_bytes} for p in mine[:1000]],
                }
            )
        counts = {k: (dict(sorted(v.items())) if k in stages.STAT_GROUPS else v) for k, v in stats.items()}
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "llmexp_version": llmexp.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "dtype": dtype.name,
            "eos_id": tokenizer.eos_id,
            "vocab_size": tokenizer.vocab_size,
            "tokenizer": {"file": TOKENIZER, "sha256": tokenizer.sha256(), "kind": self.spec.kind},
            "val_fraction": self.val_fraction,
            "sources": sources,
            "counts": {**counts, "dedup": dedup_counts},
            "splits": splits,
            "run": {"seconds": round(seconds, 2), "units": len(plans), "reused": dict(self.reused)},
            "config": self.config,
        }


def prepare_from_config(cfg: Any) -> dict[str, Any]:
    """The `llmexp-prepare` run for a composed conf/prepare.yaml; returns the manifest."""
    from hydra.utils import instantiate

    from llmexp.config.overrides import to_container

    return Preparation(
        source=instantiate(cfg.source),
        clean=instantiate(cfg.clean),
        pii=instantiate(cfg.pii),
        dedup=instantiate(cfg.dedup),
        tokenizer=instantiate(cfg.tokenizer),
        pack=instantiate(cfg.pack),
        output_dir=cfg.paths.output_dir,
        name=cfg.name,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        progress=cfg.progress,
        keep_work=cfg.keep_work,
        config=to_container(cfg),
    ).run()
