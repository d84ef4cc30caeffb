"""Time per training step of recipes (lists of `llmexp-train` overrides), measured against each other: what fills the
default run's budget (BENCHMARKS.md, "The default run").

Each recipe's model, AdamW (fused, as in a run) and a random batch of its shape are built from the composed config
in this one process; the steps (forward, loss, backward, clipping, optimizer) then run interleaved A B C A B C ...,
and the median per recipe is reported with its ratio to the first and the number of its steps that take the time of
`--budget-steps` steps of the first. The data path, a run's only other per-step work, is 0.3% of a step. `--clock
cpu` counts this process's CPU time instead of wall time: with one thread, other load on the machine barely moves it.

    PYTHONPATH=src .venv/bin/python benchmarks/step_cost.py previous='~experiment model=gpt_small' new=
    PYTHONPATH=src .venv/bin/python benchmarks/step_cost.py --threads 1 --clock cpu previous='~experiment' b16=
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from llmexp.config.overrides import compose_config
from llmexp.tasks.optim import configure_optimization


def training_step(overrides: list[str]) -> Callable[[], None]:
    """One optimizer step of the recipe's model on a random batch of its shape."""
    cfg = compose_config("train", overrides)
    vocab = int(cfg.tokenizer.vocab_size)
    torch.manual_seed(0)
    model = instantiate(cfg.model, vocab_size=vocab).build().train()
    optimizer = configure_optimization(model, instantiate(cfg.optimizer), None, 100, fused_allowed=True)["optimizer"]
    batch = torch.randint(0, vocab, (int(cfg.data.batch_size), int(cfg.data.block_size) + 1))
    clip = float(cfg.trainer.gradient_clip_val or 0.0)

    def step() -> None:
        logits = model(batch[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten()).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="+", metavar="NAME=OVERRIDES", help="the first is the reference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per recipe per round")
    parser.add_argument("--budget-steps", type=int, default=400, help="steps of the first recipe in the budget")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    steps = {}
    for recipe in args.recipes:
        name, _, overrides = recipe.partition("=")
        steps[name] = training_step(shlex.split(overrides))
        for _ in range(2):  # warm-up: allocator, optimizer state
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            started = clock()
            for _ in range(args.steps):
                step()
            times[name].append((clock() - started) / args.steps)
    reference = statistics.median(next(iter(times.values())))
    print(f"| recipe | ms/step ({args.threads} thread(s), {args.clock}) | x first | steps in the budget |")
    print("|---|---:|---:|---:|")
    for name, measured in times.items():
        median = statistics.median(measured)
        budget = args.budget_steps * reference / median
        print(f"| {name} | {median * 1e3:.0f} | {median / reference:.3f} | {budget:.0f} |")


if __name__ == "__main__":
    main()
