"""How long `--help` and one TAB completion take for each command, against a bare Python start (the floor).

    .venv/bin/python benchmarks/cli_latency.py [--rounds 5]

Runs each case as a fresh process, interleaved round by round, and prints medians and the ratio to the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = ["train", "prepare", "eval", "generate", "serve", "export", "convert"]


def cases() -> dict[str, tuple[list[str], dict[str, str]]]:
    found = {"python -c pass (floor)": ([sys.executable, "-c", "pass"], {})}
    for name in COMMANDS:
        found[f"llmexp-{name} --help"] = ([sys.executable, "-m", f"llmexp.cli.{name}", "--help"], {})
    line = "llmexp-train model=gpt"
    completion = {"COMP_LINE": line, "COMP_POINT": str(len(line))}
    found["llmexp-train TAB (model=gpt)"] = (
        [sys.executable, "-m", "llmexp.cli.train", "-sc", "query=bash"],
        completion,
    )
    return found


def seconds(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, env={**os.environ, **env})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    runs = cases()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (command, env) in runs.items():
            times[name].append(seconds(command, env))
    floor = statistics.median(times["python -c pass (floor)"])
    print(f"| case | median s ({rounds} rounds) | x floor |\n|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / floor:.1f} |")


if __name__ == "__main__":
    main()
