"""MFU on a GPU machine: a GPT-2-124M-shaped run (bf16, torch.compile, flash attention) and a ~1B Llama-style run
sharded with FSDP, each through `llmexp-train`, with tokens/s, MFU and peak memory read from the run's metrics.

    python benchmarks/gpu_mfu.py                        # both scenarios, 60 steps each
    python benchmarks/gpu_mfu.py --scenarios gpt2_124m --steps 100 --batch 32

MFU is model FLOPs (6N + attention, per token, as the model config computes them) times tokens/s, divided by the
device's dense bf16 peak from the table in llmexp.training.flops. Needs CUDA; on a CPU machine it says so and exits.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP_ROWS = 2  # logged intervals dropped from the median (compilation and allocator warm-up)

# name -> overrides. Every scenario trains on the embedded corpus so the benchmark needs no download.
SCENARIOS: dict[str, list[str]] = {
    "gpt2_124m": [
        "model=gpt2_124m",
        "data.block_size=1024",
        "trainer.precision=bf16-mixed",
        "compile=true",
        "callbacks=sdpa_flash",
        "optimizer.fused=true",
    ],
    "llama_1b_fsdp": [
        "model=llama_1b",
        "strategy=fsdp",
        "trainer.devices=-1",
        "data.block_size=2048",
        "trainer.precision=bf16-mixed",
        "callbacks=sdpa_flash",
    ],
}


def run(name: str, overrides: list[str], steps: int, batch: int, run_dir: Path) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "llmexp.cli.train",
        *overrides,
        f"data.batch_size={batch}",
        f"trainer.max_steps={steps}",
        "eval=none",
        "trainer.limit_val_batches=0",
        "+trainer.enable_checkpointing=false",
        f"hydra.run.dir={run_dir}",
    ]
    print(f"$ {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=os.environ.copy())
    with (run_dir / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("perf/tokens_per_sec")][WARMUP_ROWS:]
    if not rows:
        raise SystemExit(f"{name}: no throughput rows logged; raise --steps")
    return {
        "tokens_per_sec": statistics.median(float(r["perf/tokens_per_sec"]) for r in rows),
        "mfu": statistics.median(float(r["perf/mfu"]) for r in rows),
        "peak_mem_gb": max(float(r["perf/peak_mem_gb"]) for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16, help="micro-batch per device")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU; none here (on CPUs use train_throughput.py)")
    device = torch.cuda.get_device_name(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios.split(","):
            results[name] = run(name, SCENARIOS[name], args.steps, args.batch, Path(tmp) / name)
    print(f"\n{device} x{torch.cuda.device_count()}, torch {torch.__version__}, {args.steps} steps, batch {args.batch}")
    print(f"{'scenario':<16}{'tokens/s':>12}{'MFU':>8}{'peak mem':>10}")
    for name, r in results.items():
        print(f"{name:<16}{r['tokens_per_sec']:>12,.0f}{r['mfu']:>8.1%}{r['peak_mem_gb']:>9.1f}G")


if __name__ == "__main__":
    main()
