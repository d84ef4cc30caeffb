"""HumanEval-style functional correctness: run model-written code against the task's tests in a separate Python
process with a wall-clock timeout, CPU-time and address-space limits, in an empty temporary directory; pass@k by the
unbiased estimator of Chen et al. (2021)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from math import comb

# Code is cut at the first of these: the model has left the function body it was asked to complete.
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


@dataclass
class ExecutionResult:
    passed: bool
    status: str  # passed | failed (a test assertion) | timeout | memory | error
    detail: str = ""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) passes: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def truncate_completion(text: str) -> str:
    cut = min((i for i in (text.find(s) for s in STOP_SEQUENCES) if i >= 0), default=len(text))
    return text[:cut]


def _limits(cpu_seconds: int, memory_mb: int):
    def apply() -> None:  # runs in the child before exec
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        memory = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        os.setsid()

    return apply


def run_program(program: str, timeout_s: float = 5.0, memory_mb: int = 512) -> ExecutionResult:
    """Run `program` with `python -I` (isolated: no site-packages of the user, no env vars) under limits."""
    with tempfile.TemporaryDirectory(prefix="llmexp-exec-") as workdir:
        path = os.path.join(workdir, "program.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(program)
        try:
            proc = subprocess.run(
                [sys.executable, "-I", path],
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
                preexec_fn=_limits(max(1, int(timeout_s) + 1), memory_mb) if os.name == "posix" else None,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return ExecutionResult(False, "timeout", f"exceeded {timeout_s}s")
    if proc.returncode == 0:
        return ExecutionResult(True, "passed")
    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    status = "failed" if "AssertionError" in tail else "memory" if "MemoryError" in tail else "error"
    if proc.returncode < 0:  # killed by a signal: SIGXCPU (CPU limit) or SIGKILL
        status, tail = "timeout", f"killed by signal {-proc.returncode}"
    return ExecutionResult(False, status, tail[:300])


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    return f"{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n"


def run_code_samples(
    problems: list[dict], samples: list[list[str]], timeout_s: float = 5.0, memory_mb: int = 512
) -> list[list[ExecutionResult]]:
    """Each completion of `samples[i]` run against `problems[i]` ({prompt, test, entry_point})."""
    return [
        [
            run_program(humaneval_program(p["prompt"], c, p["test"], p["entry_point"]), timeout_s, memory_mb)
            for c in completions
        ]
        for p, completions in zip(problems, samples, strict=True)
    ]


def pass_at_k_scores(results: list[list[ExecutionResult]], ks: list[int]) -> dict[str, float]:
    """Mean pass@k over problems, for each k that every problem has enough samples for."""
    counts = [(len(runs), sum(r.passed for r in runs)) for runs in results]
    return {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in ks
        if all(n >= k for n, _ in counts)
    }


def score_code_samples(
    problems: list[dict], samples: list[list[str]], ks: list[int], timeout_s: float = 5.0, memory_mb: int = 512
) -> dict[str, float]:
    """Mean pass@k over problems; `samples[i]` are completions of `problems[i]` ({prompt, test, entry_point})."""
    return pass_at_k_scores(run_code_samples(problems, samples, timeout_s, memory_mb), ks)
