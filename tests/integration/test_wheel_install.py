"""A non-editable install (`pip install .`, what a cluster image or a user's venv gets) finds its configs and runs
the smoke experiment from a folder that has no checkout in sight."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """No path that could lead back to the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LLMEXP_CONFIG_DIR")}


@pytest.mark.slow
def test_a_wheel_install_runs_the_smoke_experiment_from_another_folder(tmp_path):
    dist = tmp_path / "dist"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(dist),
        str(REPO),
    ]
    subprocess.run(build, check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("llmexp-*.whl")
    assert "llmexp-lm-eval.pth" in zipfile.ZipFile(wheel).namelist()  # `lm_eval --model llmexp` (setup.py)
    assert "llmexp/serving/static/arena.html" in zipfile.ZipFile(wheel).namelist()  # llmexp-serve's rating page

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    own_site = Path(
        subprocess.check_output([python, "-c", "import site; print(site.getsitepackages()[0])"], text=True).strip()
    )
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=600, env=clean_env())
    # The dependencies (torch, lightning, ...) come from this interpreter's environment (added after the install, so
    # pip does not take this checkout's editable llmexp for an installed one); llmexp only from the wheel.
    (own_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env()
    env["LLMEXP_CACHE_DIR"] = str(tmp_path / "cache")
    probe = [python, "-c", "import llmexp; print(llmexp.__file__)"]
    where = subprocess.run(probe, capture_output=True, text=True, env=env, cwd=elsewhere)
    assert where.returncode == 0, where.stderr[-3000:]
    assert Path(where.stdout.strip()).is_relative_to(own_site)  # the installed copy, not the checkout

    run = elsewhere / "run"
    command = [env_dir / "bin" / "llmexp-train", "experiment=smoke", "trainer.max_steps=4", f"hydra.run.dir={run}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=elsewhere, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "final_metrics.json").read_text())["step"] == 4
