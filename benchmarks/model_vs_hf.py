"""Our GPT-2-style model against transformers' GPT2LMHeadModel of identical shape and weights, in one process.

Training: forward + cross-entropy + backward + AdamW step, tokens/s. Generation: greedy decoding with the KV cache,
our `generate` against HF `generate`, new tokens/s. The two sides run interleaved (A B A B ...) and each figure is the
median over rounds; ratios > 1 mean ours is faster.

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


def train_rate(forward, model, batch: torch.Tensor, steps: int, device: torch.device) -> float:
    """Tokens/s of `steps` optimizer steps (after one untimed warm-up step)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    inputs, labels = batch[:, :-1], batch[:, 1:]

    def step() -> None:
        logits = forward(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * inputs.numel() / (time.perf_counter() - start)


def generation_rate(run, new_tokens: int, batch: int, device: torch.device) -> float:
    run()  # warm-up
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return new_tokens * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--embd", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
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

    figures: dict[str, list[float]] = {"train_ours": [], "train_hf": [], "gen_ours": [], "gen_hf": []}
    for _ in range(args.rounds):
        figures["train_ours"].append(train_rate(ours, ours, batch, args.steps, device))
        figures["train_hf"].append(train_rate(lambda x: hf(input_ids=x).logits, hf, batch, args.steps, device))
        ours.eval(), hf.eval()
        figures["gen_ours"].append(generation_rate(ours_generate, args.new_tokens, args.gen_batch, device))
        figures["gen_hf"].append(generation_rate(hf_generate, args.new_tokens, args.gen_batch, device))
    median = {k: statistics.median(v) for k, v in figures.items()}
    shape = f"{args.layers}L d{args.embd} {args.heads}h vocab {args.vocab}"
    print(f"\ndevice {device}, threads {torch.get_num_threads()}, model {shape}, {args.rounds} rounds (medians)")
    print("| measure | llmexp | transformers | ratio |")
    print("|---|---:|---:|---:|")
    gen_shape = f"batch {args.gen_batch}, {args.prompt_len}+{args.new_tokens}"
    rows = [("train", f"train tok/s (batch {args.batch} x {args.seq})")]
    rows.append(("gen", f"greedy generate tok/s ({gen_shape})"))
    for key, label in rows:
        a, b = median[f"{key}_ours"], median[f"{key}_hf"]
        print(f"| {label} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "figures": figures, "median": median}, handle, indent=2)


if __name__ == "__main__":
    main()
