"""Each command's own `--help`: its name, what it does, examples and only the config groups it uses; fast, because
it imports neither torch nor Lightning. `--cfg job` prints a config whose required keys are still unset."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmexp.cli.entry_points import ENTRY_POINTS

MODULES = {
    "llmexp-train": "train",
    "llmexp-prepare": "prepare",
    "llmexp-eval": "eval",
    "llmexp-generate": "generate",
    "llmexp-serve": "serve",
    "llmexp-feedback": "feedback",
    "llmexp-export": "export",
    "llmexp-convert": "convert",
}


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"llmexp.cli.{module}", *args], capture_output=True, text=True)


def test_every_console_script_has_an_entry():
    from pathlib import Path

    import tomllib

    scripts = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {*ENTRY_POINTS, "llmexp-compare", "llmexp-preflight"}
    assert set(MODULES) == set(ENTRY_POINTS)


@pytest.mark.parametrize("program", sorted(ENTRY_POINTS))
def test_help_says_what_the_command_does_with_examples_and_its_own_groups(program):
    result = cli(MODULES[program], "--help")
    assert result.returncode == 0 and not result.stderr
    text = result.stdout
    entry = ENTRY_POINTS[program]
    assert text.startswith(f"usage: {program} ")
    assert "powered by Hydra" not in text
    assert all(example in text for example in entry.examples)
    if program == "llmexp-train":
        assert "  model " in text and "  strategy " in text and "llama_small*" in text
        assert "  source " not in text and "  pii " not in text  # prepare's groups
    if program == "llmexp-prepare":
        assert "  source " in text and "  model " not in text
    if program in ("llmexp-serve", "llmexp-generate", "llmexp-export", "llmexp-convert", "llmexp-feedback"):
        assert "config groups" not in text  # they take keys only


def test_help_imports_neither_torch_nor_lightning():
    code = (
        "import sys; sys.argv = ['llmexp-train', '--help']\n"
        "from llmexp.cli.app import run\n"
        "try:\n    run('llmexp-train')\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, sorted(sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_preflight_help_is_help():
    result = cli("preflight", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: llmexp-preflight")


def test_cfg_job_prints_required_keys_unset():
    result = cli("generate", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    assert "ckpt_path: ???" in result.stdout


def test_a_typo_is_still_refused_with_cfg_job():
    result = cli("generate", "--cfg", "job", "temperatur=0.5")
    assert result.returncode == 2 and "temperatur: no such key" in result.stderr
