"""Training speed: `llmexp-train` with its default callbacks against the leanest plain PyTorch loop.

The plain loop trains the same GPT with the same AdamW kernel, parameter groups, warmup-cosine schedule, gradient
clipping and packed pydocs batches (same seed and learning rate: the final losses agree to ~0.01), and reads nothing
back from the device during training. Both run as separate processes with the same thread count, interleaved
A B A B ..., and both are timed by the same clock: a timestamp at the end of every step. Reported per shape: the
median over `--window`-step windows of tokens/s (the steady state; a window that holds a periodic checkpoint is an
outlier of llmexp's) and end to end (every timed step, checkpoint saves included). The first 10 steps are not timed.

    python benchmarks/train_throughput.py --sections overhead --rounds 3          # the table in BENCHMARKS.md
    python benchmarks/train_throughput.py --sections overhead --shapes small --rounds 5 --threads 1
    python benchmarks/train_throughput.py --sections scaling,switches             # llmexp alone: MFU, speed switches
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 10
LR = 2e-3  # both sides' (the default experiment's 4e-3 would change the loss, not the speed)
# name -> (conf/model option, model overrides, block size, batch size, steps, steps per timing window)
SHAPES = {
    "small": ("gpt_small", {}, 64, 12, 300, 20),  # 4 layers, 4 heads, 128 wide: ~40 ms steps on 2 idle cores
    "wide": ("gpt_small", {"n_layer": 6, "n_head": 6, "n_embd": 384}, 256, 8, 60, 5),  # ~0.7 s steps
    "gpt_small": ("gpt_small", {}, 256, 16, 100, 10),
}


class StepClock(L.Callback):
    """What the benchmark adds to llmexp-train: the time at the end of every training step, and the last loss."""

    def __init__(self, path: str):
        self.path, self.ends = path, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())
        if trainer.global_step >= trainer.max_steps:
            Path(self.path).write_text(json.dumps({"ends": self.ends, "loss": float(outputs["loss"])}))


def step_rates(ends: list[float], tokens_per_step: int, window: int) -> dict:
    """Median tokens/s over windows of `window` steps, and over every step after the warm-up."""
    timed = ends[WARMUP - 1 :]
    rates = [window * tokens_per_step / (timed[i + window] - timed[i]) for i in range(0, len(timed) - window, window)]
    return {
        "tokens_per_sec": statistics.median(rates),
        "end_to_end": (len(timed) - 1) * tokens_per_step / (timed[-1] - timed[0]),
    }


def plain_loop(shape: str, steps: int, cache: str) -> dict:
    """The baseline: model, optimizer, schedule, clipping and data as llmexp builds them, and nothing else."""
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from llmexp.data.datamodule import PackedBlocks
    from llmexp.data.prepared import prepare
    from llmexp.data.pydocs import PydocsCorpus
    from llmexp.data.sampler import ResumableSampler
    from llmexp.tasks.optim import weight_decay_groups
    from llmexp.tokenizer import TokenizerSpec
    from llmexp.training.schedules import warmup_cosine

    model_name, fields, block, batch, *_ = SHAPES[shape]
    torch.manual_seed(1337)
    prepared = prepare(PydocsCorpus(), TokenizerSpec(), cache)
    model_cfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "model" / f"{model_name}.yaml"), fields)
    model = instantiate(model_cfg, vocab_size=prepared.tokenizer.vocab_size).build()
    groups = weight_decay_groups(model, 0.1)
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.95), eps=1e-8, fused=True)
    scheduler = warmup_cosine(optimizer, total_steps=steps, warmup_steps=50, min_lr_ratio=0.1)
    dataset = PackedBlocks(prepared.tokens["train"], block)
    sampler = ResumableSampler(len(dataset), 1337)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True)
    model.train()
    ends: list[float] = []
    while len(ends) < steps:
        for item in loader:
            logits = model(item["input_ids"])
            loss = F.cross_entropy(logits.flatten(0, 1), item["labels"].flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            ends.append(time.perf_counter())
            if len(ends) == steps:
                break
    return {"ends": ends, "loss": float(loss)}


def run_plain(shape: str, steps: int, cache: str, env: dict) -> dict:
    """The plain loop in its own process, like llmexp-train, so both start from the same state."""
    cmd = [sys.executable, __file__, "--plain-worker", shape, str(steps), cache]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[7:])


def run_default(shape: str, steps: int, cache: str, run_dir: Path, env: dict) -> dict:
    """llmexp-train with conf/callbacks/default.yaml (checkpoints every 50 steps, RNG states, divergence guard,
    preemption, progress, throughput, loss curve, samples); no validation, as the plain loop has none."""
    model_name, fields, block, batch, *_ = SHAPES[shape]
    clock = run_dir / "clock.json"
    overrides = [
        f"model={model_name}",
        *(f"model.{k}={v}" for k, v in fields.items()),
        f"data.block_size={block}",
        f"data.batch_size={batch}",
        f"trainer.max_steps={steps}",
        f"optimizer.lr={LR}",
        "callbacks=default",
        "callbacks.samples.count=1",
        "eval=none",
        "trainer.limit_val_batches=0",
        f"hydra.run.dir={run_dir}",
        "+callbacks.clock._target_=train_throughput.StepClock",
        f"+callbacks.clock.path={clock}",
    ]
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "benchmarks"), env.get("PYTHONPATH", "")) if p)
    subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", *overrides],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "LLMEXP_CACHE_DIR": cache, "PYTHONPATH": pythonpath},
        cwd=ROOT,
    )
    return json.loads(clock.read_text())


def run_llmexp(model: str, block: int, batch: int, steps: int, cache: str, run_dir: Path, extra=()) -> dict:
    overrides = [
        f"model={model}",
        f"data.block_size={block}",
        f"data.batch_size={batch}",
        f"trainer.max_steps={steps}",
        "callbacks=throughput",
        "eval=none",
        "trainer.limit_val_batches=0",
        "+trainer.enable_checkpointing=false",
        f"hydra.run.dir={run_dir}",
        *extra,  # last: a switch may change what the defaults above set (e.g. the micro-batch size)
    ]
    env = {**os.environ, "LLMEXP_CACHE_DIR": cache}
    subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", *overrides],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    with (run_dir / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("perf/tokens_per_sec")]
    median = {
        k: statistics.median(float(r[k]) for r in rows)
        for k in ("perf/tokens_per_sec", "perf/mfu", "perf/data_wait_frac")
    }
    return {
        "tokens_per_sec": median["perf/tokens_per_sec"],
        "mfu": median["perf/mfu"],
        "data_wait": median["perf/data_wait_frac"],
        "peak_mem_gb": max(float(r["perf/peak_mem_gb"]) for r in rows),
    }


def overhead_table(args: argparse.Namespace, cache: str, tmp: Path) -> None:
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    rows = []
    for shape in args.shapes.split(","):
        _, _, block, batch, steps, window = SHAPES[shape]
        steps, window = args.steps or steps, args.window or window
        plain, ours = [], []
        for round_ in range(args.rounds):  # interleaved: both sides see the same machine load
            for side, results in (("plain", plain), ("llmexp", ours)):
                if side == "plain":
                    result = run_plain(shape, steps, cache, env)
                else:
                    result = run_default(shape, steps, cache, tmp / f"{shape}-{round_}", env)
                results.append({**step_rates(result["ends"], block * batch, window), "loss": result["loss"]})
            print(f"{shape} round {round_ + 1}: plain {plain[-1]}, llmexp {ours[-1]}", flush=True)
        rows.append(summarise(shape, plain, ours))
    print_table(rows, args)


def summarise(shape: str, plain: list[dict], ours: list[dict]) -> dict:
    def median(results: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in results)

    return {
        "shape": shape,
        "plain": median(plain, "tokens_per_sec"),
        "ours": median(ours, "tokens_per_sec"),
        "rounds": [o["tokens_per_sec"] / p["tokens_per_sec"] for p, o in zip(plain, ours, strict=True)],
        "e2e": median(ours, "end_to_end") / median(plain, "end_to_end"),
        "loss": (median(plain, "loss"), median(ours, "loss")),
    }


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\nthreads={args.threads or 'torch default'} rounds={args.rounds}")
    print("| shape | plain loop tok/s | llmexp tok/s | ratio | per round | end to end | final loss plain / llmexp |")
    print("|---|---:|---:|---:|---|---:|---|")
    for r in rows:
        rounds = ", ".join(f"{x:.2f}" for x in r["rounds"])
        print(
            f"| {r['shape']} | {r['plain']:,.0f} | {r['ours']:,.0f} | **{r['ours'] / r['plain']:.3f}** | {rounds} "
            f"| {r['e2e']:.3f} | {r['loss'][0]:.4f} / {r['loss'][1]:.4f} |"
        )


def scaling_table(args: argparse.Namespace, cache: str, tmp: Path) -> None:
    print(f"\n{'model':<12}{'block':>6}{'tokens/s':>12}{'MFU':>8}{'data wait':>11}")
    for item in args.scaling.split(","):
        model, block = item.split(":")
        result = run_llmexp(model, int(block), args.batch, args.scaling_steps, cache, tmp / f"scale-{model}-{block}")
        print(
            f"{model:<12}{block:>6}{result['tokens_per_sec']:>12,.0f}{result['mfu']:>8.1%}{result['data_wait']:>11.2%}",
            flush=True,
        )


# Each switch: (name, baseline overrides, switched overrides). Same model, data and global batch in both.
SWITCHES = {
    "fused_adamw": ("fused AdamW vs foreach", ["optimizer.foreach=true"], ["optimizer.fused=true"]),
    "sdpa_flash": (
        "SDPA flash kernel vs math",
        ["+callbacks.sdpa._target_=llmexp.training.callbacks.sdpa.SDPABackends", "+callbacks.sdpa.backends=[math]"],
        ["+callbacks.sdpa._target_=llmexp.training.callbacks.sdpa.SDPABackends", "+callbacks.sdpa.backends=[flash]"],
    ),
    "activation_ckpt": ("activation checkpointing on vs off", [], ["model.gradient_checkpointing=true"]),
    "grad_accum": ("4 micro-batches of B/4 vs 1 of B", [], ["trainer.accumulate_grad_batches=4", "data.batch_size=4"]),
    "workers": ("1 DataLoader worker vs none", ["data.num_workers=0"], ["data.num_workers=1"]),
    "bf16": ("bf16-mixed vs fp32", [], ["trainer.precision=bf16-mixed"]),
}


def switches_table(args: argparse.Namespace, cache: str, tmp: Path) -> None:
    print(
        f"\nSpeed switches ({args.model}, block {args.block}, batch {args.batch}, {args.switch_steps} steps, "
        f"{args.rounds} interleaved rounds; median tokens/s)"
    )
    print(f"{'switch':<38}{'baseline':>10}{'switched':>10}{'ratio':>7}{'mem base':>10}{'mem sw':>8}")
    for name in args.switches.split(","):
        label, base_overrides, switched_overrides = SWITCHES[name]
        base, switched = [], []
        for round_ in range(args.rounds):
            for results, extra, tag in ((base, base_overrides, "a"), (switched, switched_overrides, "b")):
                results.append(
                    run_llmexp(
                        args.model,
                        args.block,
                        args.batch,
                        args.switch_steps,
                        cache,
                        tmp / f"{name}-{tag}{round_}",
                        extra,
                    )
                )
        b = statistics.median(r["tokens_per_sec"] for r in base)
        s_ = statistics.median(r["tokens_per_sec"] for r in switched)
        print(
            f"{label:<38}{b:>10,.0f}{s_:>10,.0f}{s_ / b:>7.2f}{max(r['peak_mem_gb'] for r in base):>9.2f}G"
            f"{max(r['peak_mem_gb'] for r in switched):>7.2f}G",
            flush=True,
        )


def main() -> None:
    if sys.argv[1:2] == ["--plain-worker"]:
        shape, steps, cache = sys.argv[2:5]
        print("RESULT", json.dumps(plain_loop(shape, int(steps), cache)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, from {list(SHAPES)}")
    parser.add_argument("--steps", type=int, help="steps per run (default: the shape's own)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, help="steps per timing window (default: the shape's own)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both sides (default: torch's)")
    parser.add_argument("--model", default="gpt_small", help="scaling/switches: the model")
    parser.add_argument("--block", type=int, default=256, help="scaling/switches: the block size")
    parser.add_argument("--batch", type=int, default=16, help="scaling/switches: the batch size")
    parser.add_argument("--scaling", default="gpt_tiny:128,gpt_tiny:256,gpt_small:128,gpt_small:256")
    parser.add_argument("--scaling-steps", type=int, default=80)
    parser.add_argument(
        "--switches",
        default="fused_adamw,sdpa_flash,activation_ckpt,grad_accum,workers",
        help=f"comma-separated, from {sorted(SWITCHES)} ('' to skip)",
    )
    parser.add_argument("--switch-steps", type=int, default=60)
    parser.add_argument("--sections", default="overhead,scaling,switches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.environ.get("LLMEXP_CACHE_DIR", str(ROOT / "outputs" / "cache"))
        sections = args.sections.split(",")
        if "overhead" in sections:
            overhead_table(args, cache, Path(tmp))
        if "scaling" in sections and args.scaling:
            scaling_table(args, cache, Path(tmp))
        if "switches" in sections and args.switches:
            switches_table(args, cache, Path(tmp))


if __name__ == "__main__":
    main()
