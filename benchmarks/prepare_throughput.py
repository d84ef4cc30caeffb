"""Throughput of `llmexp-prepare` on real text, each figure against a baseline measured in the same run.

1. End-to-end prepare (read, clean, redact, dedup, train BPE, tokenise, pack) in MB of input per second, against raw
   `tokenizers` encode_batch of the same text (how much of the time is tokenisation). With --slurm, the same
   prepare as a SLURM array of --tasks tasks per stage (executor=slurm) on a running cluster, interleaved with the
   local runs; its shards are checked byte-identical to the local ones.
2. The tokenise stage (Arrow unit files -> token files, parallel workers) against raw `encode_batch` on the same
   kept texts in one process: MB/s and the ratio.
3. Near-dedup documents per second (signature + LSH decision) against plain datasketch usage (MinHash over the
   shingle strings with its default SHA-1 hash).
Runs alternate A B A B ...; medians are reported. Uses ../shared/data's War and Peace and Shakespeare when present,
else the embedded corpus.

    PYTHONPATH=src .venv/bin/python benchmarks/prepare_throughput.py [--reps 3] [--workers 2] [--data ../shared/data]
        [--slurm --tasks 3]      # needs a SLURM cluster (slurm/local_cluster.sh start)
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from llmexp.data.prepared import token_dtype
from llmexp.prepare import stages
from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.clusters import find_duplicates
from llmexp.prepare.dedup import DedupConfig
from llmexp.prepare.executors import SlurmExecutor
from llmexp.prepare.pii import PIIConfig
from llmexp.prepare.pipeline import PackConfig, Preparation
from llmexp.prepare.sources import FileSource, PydocsSource
from llmexp.prepare.streams import Skipped
from llmexp.prepare.workers import Workers
from llmexp.tokenizer import Tokenizer, TokenizerSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the checkout
FILES = ("gutenberg_war_and_peace.txt", "tinyshakespeare.txt")


def corpus(tmp: Path, shared: Path) -> tuple[list[Path], str]:
    present = [shared / name for name in FILES if (shared / name).is_file()]
    if present:
        return present, " + ".join(p.name for p in present)
    path = tmp / "pydocs.txt"
    path.write_text("\n\n".join(doc.text for doc in PydocsSource().corpus.all_documents()))
    return [path], "embedded pydocs corpus"


def preparation(files: list[Path], out: Path, workers: int, unit_bytes: int, executor=None) -> Preparation:
    return Preparation(
        source=FileSource([str(f) for f in files], unit_bytes=unit_bytes),
        clean=CleanConfig(),
        pii=PIIConfig(),
        dedup=DedupConfig(),
        tokenizer=TokenizerSpec(vocab_size=4096),
        pack=PackConfig(),
        output_dir=out,
        num_workers=workers,
        progress=False,
        executor=executor,
    )


def median_time(fn, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleave(*fns, reps: int) -> list[float]:
    """Median time of each function, run in turn A B C A B C ..."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, bucket in zip(fns, times, strict=True):
            bucket += median_time(fn, 1)
    return [statistics.median(t) for t in times]


def paragraphs(files: list[Path]) -> list[str]:
    text = "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    return [p for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 20]


def plain_datasketch(docs: list[str], threshold: float, num_perm: int) -> int:
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = 0
    for i, doc in enumerate(docs):
        words = re.findall(r"\w+", doc.lower())
        m = MinHash(num_perm=num_perm)
        m.update_batch([" ".join(words[j : j + 5]).encode() for j in range(max(1, len(words) - 4))])
        if lsh.query(m):
            removed += 1
        else:
            lsh.insert(i, m)
    return removed


def run_tokenize(job: stages.TokenizeJob) -> None:
    job.run()  # always (done() would skip it after the first repetition)


def ours(docs: list[str]) -> int:
    return sum(verdict is not None for verdict in find_duplicates(docs, DedupConfig()))


def shard_bytes(root: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((root / "shards").glob("*-*.*"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=SHARED, help="folder with the shared text files")
    parser.add_argument("--unit-mb", type=float, default=1.0, help="source.unit_bytes in MB (default run: 32 MiB)")
    parser.add_argument("--slurm", action="store_true", help="also time the prepare as SLURM arrays")
    parser.add_argument("--tasks", type=int, default=3, help="array tasks per stage with --slurm")
    args = parser.parse_args()
    unit_bytes = int(args.unit_mb * 2**20)
    tmp = Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    try:
        files, name = corpus(tmp, args.data)
        mb = sum(f.stat().st_size for f in files) / 1e6
        texts = [d.text for f in files for d in FileSource([str(f)]).read(FileSource([str(f)]).units()[0], Skipped())]

        # 1. end to end, against raw encode_batch of the same input text
        first = preparation(files, tmp / "warm", args.workers, unit_bytes).run()  # also gives the tokenizer for 2.
        tokenizer = Tokenizer.load(tmp / "warm" / "tokenizer.json")
        runs = iter(range(10**6))

        def end_to_end(slurm: bool = False) -> None:
            out = tmp / f"e2e{next(runs)}"
            executor = SlurmExecutor(args.tasks, mem_gb=2, folder=str(out / "slurm"), poll_s=0.3) if slurm else None
            preparation(files, out, args.workers, unit_bytes, executor).run()
            if slurm:
                assert shard_bytes(out) == shard_bytes(tmp / "warm"), "SLURM shards differ from the local ones"
            shutil.rmtree(out)

        timed = [end_to_end, lambda: tokenizer.backend.encode_batch(texts)]
        t_e2e, t_raw_all, *t_slurm = interleave(
            *timed, *([lambda: end_to_end(True)] if args.slurm else []), reps=args.reps
        )

        # 2. the tokenise stage on the kept texts (warm worker pool) against raw encode_batch of those texts
        prep = preparation(files, tmp / "warm", args.workers, unit_bytes)
        prep.prepare_decontam()
        plans = prep.plan_units()
        decision = prep.run_dedup(plans)  # already decided by the warm run: read back
        kept = []
        for p in plans:
            table = stages.read_unit_table(p.clean_path, ["text"])
            keep = stages.kept_rows(str(decision), p.index, table.num_rows)
            kept += [t for t, k in zip(table.column("text").to_pylist(), keep, strict=True) if k]
        kept_mb = sum(len(t.encode()) for t in kept) / 1e6
        dtype = token_dtype(tokenizer.vocab_size).name
        jobs = [
            stages.TokenizeJob(
                str(p.clean_path),
                p.index,
                str(decision),
                str(tmp / "warm" / "tokenizer.json"),
                dtype,
                256,
                str(tmp / f"tok-{p.index}"),
                0.01,
                1.0,
                0,
            )
            for p in plans
        ]
        with Workers(args.workers, progress=False) as workers:
            workers.map(run_tokenize, jobs, "warm-up")
            t_stage, t_stage0, t_raw = interleave(
                lambda: workers.map(run_tokenize, jobs, "tokenize"),
                lambda: [run_tokenize(j) for j in jobs],
                lambda: tokenizer.backend.encode_batch(kept, add_special_tokens=False),
                reps=args.reps,
            )

        # 3. near dedup on paragraphs
        docs = paragraphs(files)
        t_ours, t_plain = interleave(lambda: ours(docs), lambda: plain_datasketch(docs, 0.8, 128), reps=args.reps)

        print(
            f"\nprepare throughput on {name} ({mb:.2f} MB in {len(plans)} units of <= {args.unit_mb} MB), "
            f"{args.workers} workers, median of {args.reps}\n"
        )
        print("| measurement | ours | baseline | ratio (ours / baseline) |")
        print("|---|---|---|---|")
        print(
            f"| end-to-end prepare, MB/s of input | {mb / t_e2e:.2f} | raw encode_batch of the input: "
            f"{mb / t_raw_all:.2f} | {t_raw_all / t_e2e:.2f} |"
        )
        if t_slurm:
            print(
                f"| end-to-end prepare as a {args.tasks}-task SLURM array per stage, MB/s of input | "
                f"{mb / t_slurm[0]:.2f} | local, {args.workers} workers: {mb / t_e2e:.2f} | {t_e2e / t_slurm[0]:.2f} |"
            )
        print(
            f"| tokenise stage ({args.workers} workers), MB/s | {kept_mb / t_stage:.2f} | raw encode_batch: "
            f"{kept_mb / t_raw:.2f} | {t_raw / t_stage:.2f} |"
        )
        print(
            f"| tokenise stage (in process), MB/s | {kept_mb / t_stage0:.2f} | raw encode_batch: "
            f"{kept_mb / t_raw:.2f} | {t_raw / t_stage0:.2f} |"
        )
        print(
            f"| near dedup ({len(docs)} paragraphs), docs/s | {len(docs) / t_ours:.0f} | plain datasketch: "
            f"{len(docs) / t_plain:.0f} | {t_plain / t_ours:.2f} |"
        )
        counts = first["counts"]
        print(
            f"\nkept {counts['dedup']['kept']} of {counts['documents_read']} documents "
            f"({counts['dedup']['exact']} exact, {counts['dedup']['near']} near duplicates); "
            f"{first['splits']['train']['tokens']:,} train tokens"
        )
        assert np.isfinite(t_e2e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
