"""`llmexp-prepare`: raw documents -> cleaned, redacted, deduplicated -> tokenizer -> packed token shards.

Stages, their jobs, and where results live (under <output>/work/, keyed by a hash of every setting that shapes them):
1. read (per unit)        read, clean, redact, hash, sign -> clean-<key>/<unit>.arrow; dedup keys -> keys-<key>/;
                          benchmark n-gram hits -> hits-<key>/
2. cluster (per partition of the key space)  confirmed duplicate pairs -> clusters-<key>/
3. decide (one job, here) which documents go (duplicates; benchmark overlaps with decontam.drop) -> decision-<key>/
4. tokenizer (one job)    trained on the kept training documents (or loaded) -> <output>/tokenizer.json
5. tokenize (per unit)    -> tokens-<key>/<unit>.{bin,json,docs.npy}
6. pack (per shard)       documents in a fixed order into shards -> <output>/shards/
7. manifest.json and DATACARD.md, written last, here.
The executor runs each stage's jobs in local worker processes or as a SLURM array (see `executors`); every job
writes complete files only and is deterministic, so a killed run resumes where it stopped, and the shards are
byte-identical whichever executor, worker count or task count produced them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from llmexp.data.prepared import SPLITS, token_dtype
from llmexp.data.shards import DATACARD, MANIFEST, SHARDS_DIR, TOKENIZER
from llmexp.errors import ConfigError
from llmexp.prepare import datacard, manifest
from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.clusters import SUMMARY, ClusterJob, DecideJob
from llmexp.prepare.decontam import DecontamConfig, HitsJob, build_index, fingerprint
from llmexp.prepare.dedup import DedupConfig
from llmexp.prepare.executors import Executor, LocalExecutor
from llmexp.prepare.packing import PackConfig, PackJob, TrainTokenizerJob, emission_order, load_docs, shard_bounds
from llmexp.prepare.pii import PIIConfig
from llmexp.prepare.shard_writer import atomic_write_bytes
from llmexp.prepare.sources import Mixture, Source, Unit, as_sources
from llmexp.prepare.stages import Chain, CleanJob, KeysJob, TokenizeJob, remove_temporaries, run_job
from llmexp.tokenizer import Tokenizer, TokenizerSpec

log = logging.getLogger(__name__)
__all__ = ["PackConfig", "Preparation", "prepare_from_config"]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class UnitPlan:
    """One unit and where its per-unit results go."""

    index: int
    source: Source
    unit: Unit
    clean_path: Path
    keys_path: Path
    hits_path: Path


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
        decontam: DecontamConfig | None = None,
        executor: Executor | None = None,
    ):
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.sources = as_sources(source)
        self.clean, self.pii, self.dedup, self.spec, self.pack = clean, pii, dedup, tokenizer, pack
        self.decontam = decontam or DecontamConfig(enabled=False)
        self.out, self.work, self.name = Path(output_dir), Path(output_dir) / "work", name
        self.val_fraction, self.seed, self.keep_work, self.config = val_fraction, seed, keep_work, config
        self.executor = executor or LocalExecutor(num_workers, progress)
        self.reused: dict[str, int] = {}
        self.hits_key, self.index_dir = "", None  # set by prepare_decontam when decontamination is on
        near = dedup.near
        signing = (near.enabled, near.num_perm, near.shingle_size, near.seed) if near.enabled else None
        reading = [{k: v for k, v in s.describe().items() if k != "weight"} for s in self.sources]
        self.clean_key = _key("clean", reading, asdict(clean), asdict(pii) if pii else None, signing)
        self.keys_key = _key(self.clean_key, dedup.to_dict())

    def _dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage(self, name: str, jobs: list[Any], markers: Path) -> None:
        """Run a stage's jobs with the executor, then clear what killed jobs left (nothing of this run is running)."""
        self.executor.run(name, jobs, markers)
        remove_temporaries(self.out)

    # -- stage 1 ---------------------------------------------------------------------------------------------
    def plan_units(self) -> list[UnitPlan]:
        clean = self._dir(f"clean-{self.clean_key}")
        keys = self._dir(f"keys-{self.keys_key}")
        plans = []
        for source in self.sources:
            for unit in source.units():
                i = len(plans)
                hits = self.work / f"hits-{self.hits_key}" / f"{unit.uid}.npy" if self.decontam.enabled else Path()
                plans.append(UnitPlan(i, source, unit, clean / f"{unit.uid}.arrow", keys / f"{unit.uid}.npy", hits))
        return plans

    def prepare_decontam(self) -> dict[str, Any]:
        """The benchmark n-gram index (built once per set of benchmark files); the report of what it holds."""
        if not self.decontam.enabled:
            return {}
        benchmarks = self.decontam.benchmarks()
        index_key = _key(self.decontam.ngram, fingerprint(benchmarks))
        self.hits_key = _key(self.clean_key, index_key)
        self.index_dir: Path | None = self._dir(f"decontam-{index_key}")
        self._dir(f"hits-{self.hits_key}")
        names = self.index_dir / "benchmarks.json"
        if names.exists():
            return json.loads(names.read_text())
        return build_index(benchmarks, self.decontam.ngram, self.index_dir)

    def run_read(self, plans: list[UnitPlan]) -> None:
        near = self.dedup.near if self.dedup.near.enabled else None
        chains = []
        for p in plans:
            steps: list[Any] = [CleanJob(p.source, p.unit, self.clean, self.pii, near, str(p.clean_path))]
            if self.dedup.active:
                steps.append(KeysJob(p.index, str(p.clean_path), self.dedup, str(p.keys_path)))
            if self.index_dir is not None:
                steps.append(HitsJob(str(p.clean_path), str(self.index_dir), self.decontam.ngram, str(p.hits_path)))
            chains.append(Chain(steps))
        self.reused["clean_units"] = sum(p.clean_path.exists() for p in plans)
        self.stage("read", chains, plans[0].clean_path.parent)

    # -- stages 2 and 3 --------------------------------------------------------------------------------------
    def run_dedup(self, plans: list[UnitPlan]) -> Path:
        clean_paths = [str(p.clean_path) for p in plans]
        edge_files: list[str] = []
        if self.dedup.active:
            directory, parts = self._dir(f"clusters-{self.keys_key}"), self.executor.parallelism
            keys = [str(p.keys_path) for p in plans]
            jobs = [
                ClusterJob(i, parts, keys, clean_paths, self.dedup, str(directory / f"part-{i:05d}-of-{parts:05d}.npy"))
                for i in range(parts)
            ]
            self.stage("cluster", jobs, directory)
            edge_files = [job.out_path for job in jobs]
        drop = self.index_dir is not None and self.decontam.drop
        self.decision_key = _key(self.keys_key, self.dedup.active, self.hits_key if drop else None)
        decision = self._dir(f"decision-{self.decision_key}")
        hits = {p.index: str(p.hits_path) for p in plans} if drop else {}
        run_job(DecideJob(edge_files, hits, clean_paths, str(decision)))
        return decision

    # -- stages 4 to 6 ---------------------------------------------------------------------------------------
    def run_tokenizer(self, plans: list[UnitPlan], decision: Path) -> Tokenizer:
        self.split_key = _key(self.decision_key, self.val_fraction, self.seed, [s.weight for s in self.sources])
        key = _key(self.split_key, self.spec.fingerprint())
        job = TrainTokenizerJob(
            self.spec,
            [str(p.clean_path) for p in plans],
            str(decision),
            self.val_fraction,
            str(self.out / TOKENIZER),
            str(self.work / "tokenizer.key"),
            key,
        )
        self.reused["tokenizer"] = int(job.done())
        self.stage("tokenizer", [job], self.work)
        return Tokenizer.load(self.out / TOKENIZER)

    def run_tokenize(self, plans: list[UnitPlan], decision: Path, tokenizer: Tokenizer) -> list[str]:
        directory = self._dir(f"tokens-{_key(self.split_key, tokenizer.sha256())}")
        dtype = token_dtype(tokenizer.vocab_size).name
        stems = [str(directory / p.unit.uid) for p in plans]
        jobs = [
            TokenizeJob(
                str(p.clean_path),
                p.index,
                str(decision),
                str(self.out / TOKENIZER),
                dtype,
                self.pack.batch_docs,
                stem,
                self.val_fraction,
                p.source.weight,
                self.seed,
            )
            for p, stem in zip(plans, stems, strict=True)
        ]
        self.reused["tokenized_units"] = sum(job.done() for job in jobs)
        self.stage("tokenize", jobs, directory)
        return stems

    def run_pack(self, stems: list[str], dtype: np.dtype) -> dict[str, Any]:
        directory, key = self.out / SHARDS_DIR, _key(Path(stems[0]).parent.name, self.pack.shard_tokens, dtype.name)
        key_path = directory / ".key"
        if directory.exists() and (not key_path.exists() or key_path.read_text() != key):
            shutil.rmtree(directory)  # shards of other settings: they would be silently mixed in
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(key_path, key.encode())
        records = self._dir(f"pack-{key}")
        docs = load_docs(stems)
        jobs, splits = [], {}
        for code, split in enumerate(SPLITS):
            order = emission_order(docs, code)
            mine = [
                PackJob(stems, split, index, a, b, dtype.name, str(directory), str(records))
                for index, (a, b) in enumerate(shard_bounds(order, self.pack.shard_tokens))
            ]
            jobs += mine
            splits[split] = {
                "documents": len(order),
                "unique_documents": sum(int((d[:, 1] == code).sum()) for d in docs),
                "tokens": int(order[:, 2].sum()),
                "shards": mine,
            }
        self.reused["shards"] = sum(job.done() for job in jobs)
        self.stage("pack", jobs, records)
        for info in splits.values():
            info["shards"] = [json.loads(job.record_path.read_text()) for job in info["shards"]]
        return splits

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.time()
        self.out.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.out / ".prepare.lock")), self.executor:
            if stale := remove_temporaries(self.out):
                log.info("removed %d temporary file(s) left by an interrupted run", stale)
            benchmarks = self.prepare_decontam()
            plans = self.plan_units()
            log.info("%d sources, %d units -> %s", len(self.sources), len(plans), self.out)
            self.run_read(plans)
            stats = manifest.merge_unit_stats(plans)
            decision = self.run_dedup(plans)
            summary = json.loads((decision / SUMMARY).read_text())
            manifest.check_documents_left(stats, summary, self.sources)
            tokenizer = self.run_tokenizer(plans, decision)
            stems = self.run_tokenize(plans, decision, tokenizer)
            splits = self.run_pack(stems, token_dtype(tokenizer.vocab_size))
            parts = manifest.Parts(plans, stats, summary, benchmarks, stems, splits, time.time() - started)
            result = manifest.build(self, parts, tokenizer)
            manifest.page_skipped_inputs(self.out, result)
            atomic_write_bytes(self.out / MANIFEST, json.dumps(result, indent=2, sort_keys=False).encode())
            atomic_write_bytes(self.out / DATACARD, datacard.render(result).encode("utf-8"))
            if not self.keep_work:
                shutil.rmtree(self.work)
        log.info("prepared %s: %s", self.out, {s: v["tokens"] for s, v in splits.items()})
        return result


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
        decontam=instantiate(cfg.decontam),
        executor=instantiate(cfg.executor),
    ).run()
