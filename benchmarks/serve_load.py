"""Loopback load test of `llmexp-serve` with requests of mixed lengths: continuous batching (requests join and
leave the running batch between decode steps) against static batching (a batch runs until its longest request
ends; newcomers wait), at several client counts, interleaved per level and round.

Each client sends its requests one after another (closed loop); client c's request t asks for `--long-tokens` new
tokens when (c + t) is a multiple of `--long-every`, else for `--short-tokens`, so that about one request in
`--long-every` in flight is a long one at any time. Reported per mode and level (medians over rounds):
generated tokens/s (the responses' `usage.completion_tokens` over wall time), generated tokens per CPU second of the
server process (what the server spent, whatever else the machine ran meanwhile), p50/p99 latency of all requests and
of the short ones. Greedy decoding of a random-weight model of the `--model` shape.

    PYTHONPATH=src .venv/bin/python benchmarks/serve_load.py                       # 8, 32, 64 clients, 3 rounds
    PYTHONPATH=src .venv/bin/python benchmarks/serve_load.py --clients 32 --rounds 1 --requests-per-client 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def random_checkpoint(directory: Path, model: str) -> Path:
    """A model of the named conf/model shape with random weights and the test tokenizer (no training needed)."""
    import torch
    from omegaconf import OmegaConf

    from llmexp.artifacts.inference import save_inference_checkpoint
    from llmexp.models.gpt import GPTConfig
    from llmexp.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(ROOT / "tests" / "assets" / "tokenizer.json")
    fields = {k: v for k, v in OmegaConf.load(ROOT / "conf" / "model" / f"{model}.yaml").items() if k != "_target_"}
    torch.manual_seed(0)
    gpt = GPTConfig(vocab_size=tokenizer.vocab_size, **fields).build()
    return save_inference_checkpoint(directory / f"{model}.ckpt", gpt, tokenizer, {})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(ckpt: Path, mode: str, batch: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "llmexp.cli.serve", f"ckpt_path={ckpt}", f"serve.port={port}", "device=cpu",
        f"serve.max_batch_size={batch}", f"serve.batching={mode}", "serve.max_wait_ms=5", "serve.log_level=warning",
        "serve.max_connections=1024",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(server: tuple[subprocess.Popen, str], clients: int, args: argparse.Namespace) -> dict:
    """`clients` closed-loop clients, `args.requests_per_client` requests each; latency per request by kind."""
    process, base = server
    latencies: dict[str, list[float]] = {"short": [], "long": []}
    tokens = 0

    async def client(http: httpx.AsyncClient, number: int) -> None:
        nonlocal tokens
        for turn in range(args.requests_per_client):
            index = number * args.requests_per_client + turn
            kind = "long" if (number + turn) % args.long_every == 0 else "short"  # ~1 in long_every in flight
            max_tokens = args.long_tokens if kind == "long" else args.short_tokens
            body = {"prompt": f"def function_{index}(x):", "max_tokens": max_tokens, "temperature": 0}
            started = time.perf_counter()
            response = await http.post(f"{base}/v1/completions", json=body, timeout=900)
            latencies[kind].append(time.perf_counter() - started)
            response.raise_for_status()
            tokens += response.json()["usage"]["completion_tokens"]

    # Idle connections are dropped before uvicorn's 5 s keep-alive ends them: else a request can race the close.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0)
    async with httpx.AsyncClient(limits=limits) as http:
        warm = {"prompt": "def warm_up(x):", "max_tokens": 4, "temperature": 0}
        await asyncio.gather(*(http.post(f"{base}/v1/completions", json=warm, timeout=900) for _ in range(clients)))
        started, cpu = time.perf_counter(), cpu_seconds(process)
        await asyncio.gather(*(client(http, number) for number in range(clients)))
        wall, cpu = time.perf_counter() - started, cpu_seconds(process) - cpu
    every = latencies["short"] + latencies["long"]
    return {
        "tokens_per_s": tokens / wall,
        "tokens_per_cpu_s": tokens / max(cpu, 0.01),
        "p50_s": percentile(every, 0.5),
        "p99_s": percentile(every, 0.99),
        "short_p50_s": percentile(latencies["short"], 0.5),
        "short_p99_s": percentile(latencies["short"], 0.99),
        "requests": len(every),
    }


def summary_table(results: list[dict]) -> str:
    """Medians over rounds, one row per (clients, mode), with continuous / static ratios."""
    keys = ("tokens_per_s", "tokens_per_cpu_s", "p50_s", "p99_s", "short_p50_s", "short_p99_s")
    rows = ["| clients | batching | tokens/s | tokens/server CPU-s | p50 (s) | p99 (s) | short p50 (s) | "
            "short p99 (s) |", "|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    medians: dict[tuple[int, str], dict] = {}
    for clients, mode in dict.fromkeys((r["clients"], r["batching"]) for r in results):
        runs = [r for r in results if r["clients"] == clients and r["batching"] == mode]
        medians[clients, mode] = m = {k: statistics.median(r[k] for r in runs) for k in keys}
        cells = [f"{m[k]:.0f}" if k.startswith("tokens") else f"{m[k]:.2f}" for k in keys]
        rows.append(f"| {clients} | {mode} | {' | '.join(cells)} |")
    rows.append("\n| clients | tokens/s continuous / static | tokens/CPU-s continuous / static | "
                "short p99 static / continuous |\n|---:|---:|---:|---:|")  # fmt: skip
    for clients in dict.fromkeys(c for c, _ in medians):
        cont, stat = medians[clients, "continuous"], medians[clients, "static"]
        rows.append(f"| {clients} | **{cont['tokens_per_s'] / stat['tokens_per_s']:.2f}** | "
                    f"{cont['tokens_per_cpu_s'] / stat['tokens_per_cpu_s']:.2f} | "
                    f"{stat['short_p99_s'] / cont['short_p99_s']:.2f} |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="checkpoint to serve (default: random weights, --model shape)")
    parser.add_argument("--model", default="gpt_small", help="conf/model shape for the random-weight checkpoint")
    parser.add_argument("--clients", default="8,32,64", help="comma-separated client counts")
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--short-tokens", type=int, default=16)
    parser.add_argument("--long-tokens", type=int, default=128)
    parser.add_argument("--long-every", type=int, default=4, help="every N-th request is a long one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write every measurement as JSON here")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.ckpt or random_checkpoint(Path(tmp), args.model)
        servers = {}
        try:
            for mode in ("continuous", "static"):
                servers[mode] = start_server(ckpt, mode, max(levels), Path(tmp) / f"server-{mode}.log")
            for clients in levels:
                for round_ in range(args.rounds):
                    for mode in ("continuous", "static"):  # interleaved: both see the same machine load
                        stats = asyncio.run(load(servers[mode], clients, args))
                        results.append({"batching": mode, "clients": clients, "round": round_, **stats})
                        print(json.dumps(results[-1]), flush=True)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)
    print("\n" + summary_table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
