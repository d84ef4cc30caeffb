"""Framework overhead: llmexp-train against a plain PyTorch loop of the same model, optimizer, schedule and data.

Both run as separate processes with the same thread count, interleaved A B A B ..., and report steady-state tokens/s
(the first steps are skipped). llmexp's figure comes from its ThroughputMonitor (which also reports MFU and the
data-wait share of each step); the plain loop times itself the same way. A scaling table over model sizes and
sequence lengths follows.

    python benchmarks/train_throughput.py                     # overhead table, 3 rounds of 120 steps each
    python benchmarks/train_throughput.py --rounds 1 --steps 60 --scaling gpt_tiny:128,gpt_small:256
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

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 10


def plain_loop(model_name: str, block: int, batch: int, steps: int, cache: str) -> dict:
    """The baseline: the same GPT, AdamW groups, warmup-cosine schedule and packed data, with no framework at all."""
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

    torch.manual_seed(1337)
    prepared = prepare(PydocsCorpus(), TokenizerSpec(), cache)
    model_cfg = OmegaConf.load(ROOT / "conf" / "model" / f"{model_name}.yaml")
    model = instantiate(model_cfg, vocab_size=prepared.tokenizer.vocab_size).build()
    optimizer = torch.optim.AdamW(weight_decay_groups(model, 0.1), lr=2e-3, betas=(0.9, 0.95), eps=1e-8)
    scheduler = warmup_cosine(optimizer, total_steps=steps, warmup_steps=50, min_lr_ratio=0.1)
    dataset = PackedBlocks(prepared.tokens["train"], block)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=ResumableSampler(len(dataset), 1337), drop_last=True
    )
    model.train()
    done, start = 0, None
    while done < steps:
        for item in loader:
            if done == WARMUP:
                start = time.perf_counter()
            logits = model(item["input_ids"])
            loss = F.cross_entropy(logits.flatten(0, 1).float(), item["labels"].flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if done == steps:
                break
    elapsed = time.perf_counter() - start
    return {"tokens_per_sec": (steps - WARMUP) * batch * block / elapsed, "loss": float(loss)}


def run_plain(model: str, block: int, batch: int, steps: int, cache: str) -> dict:
    """The plain loop in its own process, like llmexp-train, so both start from the same state."""
    cmd = [sys.executable, __file__, "--plain-worker", model, str(block), str(batch), str(steps), cache]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[7:])


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
    plain, ours = [], []
    for round_ in range(args.rounds):
        plain.append(run_plain(args.model, args.block, args.batch, args.steps, cache))
        ours.append(run_llmexp(args.model, args.block, args.batch, args.steps, cache, tmp / f"ours{round_}"))
        print(
            f"round {round_ + 1}: plain {plain[-1]['tokens_per_sec']:,.0f} tok/s, "
            f"llmexp {ours[-1]['tokens_per_sec']:,.0f} tok/s",
            flush=True,
        )
    p = statistics.median(r["tokens_per_sec"] for r in plain)
    o = statistics.median(r["tokens_per_sec"] for r in ours)
    print(f"\nmodel={args.model} block={args.block} batch={args.batch} steps={args.steps} rounds={args.rounds}")
    print(f"{'loop':<14}{'tokens/s':>12}{'MFU':>8}{'data wait':>11}")
    print(f"{'plain PyTorch':<14}{p:>12,.0f}{'':>8}{'':>11}")
    print(
        f"{'llmexp-train':<14}{o:>12,.0f}{statistics.median(r['mfu'] for r in ours):>8.1%}"
        f"{statistics.median(r['data_wait'] for r in ours):>11.2%}"
    )
    print(f"ratio llmexp / plain: {o / p:.3f}")


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
        model, block, batch, steps, cache = sys.argv[2:7]
        print("RESULT", json.dumps(plain_loop(model, int(block), int(batch), int(steps), cache)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt_small")
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
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
