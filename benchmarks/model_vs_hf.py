"""Our GPT-2-style model against transformers' GPT2LMHeadModel of identical shape and weights, in one process.

Training: forward + cross-entropy + backward + AdamW step, tokens/s. Generation: greedy decoding with the KV cache,
our `generate` against HF `generate`, new tokens/s. The two sides alternate step by step (A B A B ...) and each
figure is the median over steps or calls; ratios > 1 mean ours is faster.

    python benchmarks/model_vs_hf.py                              # CPU defaults, a few minutes on 2 cores
    python benchmarks/model_vs_hf.py --device cuda --layers 12 --embd 768 --heads 12 --vocab 50257 --seq 1024
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.gpt import GPTConfig
from llmexp.models.hf import to_hf


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(forward, model, optimizer, batch: torch.Tensor) -> None:
    logits = forward(batch[:, :-1])
    F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten()).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--embd", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per side")
    parser.add_argument("--rounds", type=int, default=5, help="timed generate calls per side")
    parser.add_argument("--gen-batch", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=args.vocab, n_layer=args.layers, n_head=args.heads, n_embd=args.embd,
                    max_seq_len=max(args.seq + 1, args.prompt_len + args.new_tokens))  # fmt: skip
    ours = cfg.build().to(device)
    hf = to_hf(ours, eos_id=0).to(device)
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    batch = torch.randint(1, args.vocab, (args.batch, args.seq + 1), device=device)
    prompts = torch.randint(1, args.vocab, (args.gen_batch, args.prompt_len), device=device)
    sampling = SamplingConfig(max_new_tokens=args.new_tokens, temperature=0, stop_at_eos=False)

    def ours_generate() -> None:
        generate(ours, prompts.tolist(), sampling, eos_id=0)

    def hf_generate() -> None:
        with torch.inference_mode():
            hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=args.new_tokens,
                        do_sample=False)  # fmt: skip

    # One step (or one generate call) of each side in turn, so that a change of load hits both alike.
    hf_forward = lambda x: hf(input_ids=x).logits  # noqa: E731
    sides = {"ours": (ours, ours), "hf": (hf_forward, hf)}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, (_, m) in sides.items()}
    times: dict[str, list[float]] = {"train_ours": [], "train_hf": [], "gen_ours": [], "gen_hf": []}
    for step in range(args.steps + 1):
        for name, (forward, model) in sides.items():
            model.train()
            seconds = timed(lambda: train_step(forward, model, optimizers[name], batch), device)  # noqa: B023
            if step:  # the first step of each side warms up
                times[f"train_{name}"].append(seconds)
    ours.eval(), hf.eval()
    for call in range(args.rounds + 1):
        for name, fn in (("ours", ours_generate), ("hf", hf_generate)):
            seconds = timed(fn, device)
            if call:
                times[f"gen_{name}"].append(seconds)
    train_tokens, gen_tokens = batch[:, :-1].numel(), args.new_tokens * args.gen_batch
    figures = {k: [(train_tokens if k.startswith("train") else gen_tokens) / t for t in v] for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in figures.items()}
    shape = f"{args.layers}L d{args.embd} {args.heads}h vocab {args.vocab}"
    runs = f"{args.steps} train steps and {args.rounds} generate calls per side, interleaved (medians)"
    print(f"\ndevice {device}, threads {torch.get_num_threads()}, model {shape}; {runs}")
    print("| measure | llmexp | transformers | ratio of medians | median of paired ratios |")
    print("|---|---:|---:|---:|---:|")
    gen_shape = f"batch {args.gen_batch}, {args.prompt_len}+{args.new_tokens}"
    rows = [("train", f"train tok/s (batch {args.batch} x {args.seq})")]
    rows.append(("gen", f"greedy generate tok/s ({gen_shape})"))
    for key, label in rows:
        a, b = median[f"{key}_ours"], median[f"{key}_hf"]
        paired = statistics.median(x / y for x, y in zip(figures[f"{key}_ours"], figures[f"{key}_hf"], strict=True))
        print(f"| {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f} | {paired:.2f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "figures": figures, "median": median}, handle, indent=2)


if __name__ == "__main__":
    main()
