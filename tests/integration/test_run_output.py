"""What a user reads after a default run: no library noise, and next-step commands that work exactly as printed."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# Lines that once appeared in an ordinary run and told the user nothing they could act on.
NOISE = (
    "litlogger",
    "Tip: ",
    "srun` command is available",
    "Total FLOPs",
    "Epoch 0/-",
    "\x1b[",  # raw terminal colour codes in a log
    "weights_only",
    "not resumable",
    "anonymous",
    "Setting accelerator to CPU",  # DeepSpeed, imported for nothing
    "Seed set to",
)


def command(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMEXP_CACHE_DIR": str(cache)}
    return subprocess.run([*args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def llmexp(name: str) -> list[str]:
    return [sys.executable, "-m", f"llmexp.cli.{name}"]


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    found = [pattern for pattern in NOISE if pattern in output]
    assert not found, f"noise {found} in:\n{output[-3000:]}"


def hint(result: subprocess.CompletedProcess, name: str) -> list[str]:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(f"{name}: ")]
    words = shlex.split(line.split(": ", 1)[1])
    assert words[0] == "llmexp-generate"
    return [*llmexp("generate"), *words[1:]]


@pytest.mark.slow
def test_a_default_short_run_is_quiet_and_its_hint_works_as_printed(tmp_path, cache_dir):
    run = tmp_path / "run"
    result = command(tmp_path, cache_dir, *llmexp("train"), "experiment=smoke", f"hydra.run.dir={run}")
    assert_quiet(result)
    generated = command(tmp_path, cache_dir, *hint(result, "Generate"), "max_new_tokens=8")
    assert_quiet(generated)
    assert generated.stdout.strip()

    exported = command(tmp_path, cache_dir, *llmexp("export"), f"ckpt_path={run}/checkpoints/last.ckpt", "out=hf")
    assert_quiet(exported)
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "hf").iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # model.safetensors included
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())["model_max_length"] == 256


@pytest.mark.slow
def test_an_sft_run_hints_a_chat_prompt_that_works(tmp_path, cache_dir):
    rows = [
        {"instruction": f"Add {a} and {b}.", "input": "", "output": f"The sum is {a + b}."}
        for a in range(9)
        for b in range(9)
    ]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    run = tmp_path / "run"
    args = ("experiment=sft", "model=gpt_tiny", f"data.train_file={tmp_path / 'rows.json'}", "trainer.max_steps=4")
    result = command(tmp_path, cache_dir, *llmexp("train"), *args, "data.block_size=64", f"hydra.run.dir={run}")
    assert_quiet(result)
    generate = hint(result, "Generate")
    assert "chat=true" in generate and any(w.startswith("prompt=Add ") for w in generate)
    samples = (run / "samples.txt").read_text()
    assert samples.startswith("<|user|>\nAdd ")  # samples are prompted through the chat template too
    assert_quiet(command(tmp_path, cache_dir, *generate, "max_new_tokens=8"))
