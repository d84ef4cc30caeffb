"""Loopback load test of `llmexp-serve`: latency percentiles and generated tokens/s at several concurrencies, with
dynamic batching on (max_batch_size = the highest concurrency) and off (max_batch_size=1), interleaved per level.

Each mode runs its own server process; every concurrency level first warms up, then sends a fixed number of
non-streaming greedy completion requests with the same max_tokens. A request may end early at EOS, so tokens/s
counts the tokens actually generated (the responses' `usage.completion_tokens`).

    PYTHONPATH=src .venv/bin/python benchmarks/serve_load.py                       # gpt_small shape, random weights
    PYTHONPATH=src .venv/bin/python benchmarks/serve_load.py --ckpt <run>/checkpoints/last.ckpt --requests 64
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


def start_server(ckpt: Path, batch: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "llmexp.cli.serve", f"ckpt_path={ckpt}", f"serve.port={port}", "device=cpu",
        f"serve.max_batch_size={batch}", "serve.max_wait_ms=5", "serve.log_level=warning",
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


async def load(base: str, concurrency: int, requests: int, max_tokens: int) -> dict:
    """`requests` completions with at most `concurrency` in flight; latency per request, tokens over wall time."""
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0

    async def one(client: httpx.AsyncClient, index: int) -> None:
        nonlocal tokens
        body = {"prompt": f"def function_{index}(x):", "max_tokens": max_tokens, "temperature": 0}
        async with limit:
            started = time.perf_counter()
            response = await client.post(f"{base}/v1/completions", json=body, timeout=600)
            latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        tokens += response.json()["usage"]["completion_tokens"]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        await asyncio.gather(*(one(client, i) for i in range(concurrency)))  # warm-up: connections, first batch
        latencies.clear()
        tokens = 0
        started = time.perf_counter()
        await asyncio.gather(*(one(client, i) for i in range(requests)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        "tokens_per_s": tokens / wall,
        "requests_per_s": requests / wall,
        "tokens": tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="checkpoint to serve (default: random weights, --model shape)")
    parser.add_argument("--model", default="gpt_small", help="conf/model shape for the random-weight checkpoint")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client concurrencies")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.ckpt or random_checkpoint(Path(tmp), args.model)
        servers = {}
        try:
            for mode, batch in (("on", max(levels)), ("off", 1)):
                servers[mode] = start_server(ckpt, batch, Path(tmp) / f"server-{mode}.log")
            for concurrency in levels:
                for mode in ("on", "off"):  # interleaved: both modes see the same machine load
                    stats = asyncio.run(load(servers[mode][1], concurrency, max(args.requests, concurrency),
                                             args.max_tokens))  # fmt: skip
                    results.append({"batching": mode, "concurrency": concurrency, **stats})
                    print(json.dumps(results[-1]), flush=True)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)
    print("\n| batching | concurrency | p50 latency (s) | p99 latency (s) | generated tokens/s | requests/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['batching']} | {r['concurrency']} | {r['p50_s']:.3f} | {r['p99_s']:.3f} | "
            f"{r['tokens_per_s']:.0f} | {r['requests_per_s']:.2f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
