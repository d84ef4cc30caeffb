"""docker/build.sh builds the `serve` image here (no registry: a local Debian base, dependencies from wheels), the
image serves a tiny exported checkpoint over HTTP on 127.0.0.1, and a one-line code change rebuilds only llmexp.

Needs a Docker daemon: the one that answers, else docker/daemon.sh starts one as root; skipped where neither works.
The base image, the wheels and Docker's layer cache persist between runs (docker/build.sh's cache), so a second run
builds only the llmexp layers (.ci/run builds the image while it installs, so CI's run is such a second run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from llmexp.artifacts.inference import load_for_inference, save_inference_checkpoint
from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer
from server_process import free_port

REPO = Path(__file__).resolve().parents[2]
DAEMON = REPO / "docker" / "daemon.sh"
IMAGE = "llmexp-test"
# What docker/build.sh needs of a checkout (the wheels it stages are left out: it stages them again).
BUILD_INPUTS = (".dockerignore", "pyproject.toml", "setup.py", "README.md", "src", "docker")

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def docker_daemon() -> Iterator[None]:
    """The daemon that answers, or one docker/daemon.sh starts (and stops afterwards)."""
    if docker_answers():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("no Docker daemon answers, and starting one needs root")
    result = subprocess.run([DAEMON, "start"], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["docker/daemon.sh start failed"])[-1]
        pytest.skip(f"no Docker daemon could be started: {reason}")
    yield
    subprocess.run([DAEMON, "stop"], capture_output=True, timeout=120)


def build_serve(checkout: Path, image: str) -> list[str]:
    """Build `image:serve` from `checkout` with its docker/build.sh; the image's layer digests."""
    env = {**os.environ, "LLMEXP_DOCKER_IMAGE": image, "PYTHON": sys.executable}
    result = subprocess.run(
        [checkout / "docker" / "build.sh", "serve"], capture_output=True, text=True, env=env, timeout=1500
    )
    assert result.returncode == 0, result.stderr[-3000:]
    inspect = ["docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", f"{image}:serve"]
    return json.loads(subprocess.check_output(inspect, text=True))


@pytest.fixture(scope="module")
def serve_layers(docker_daemon) -> list[str]:
    return build_serve(REPO, IMAGE)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT exported as an inference checkpoint, in a folder the image's non-root user can read."""
    folder = tmp_path_factory.mktemp("models")
    tokenizer = Tokenizer.load(REPO / "tests" / "assets" / "tokenizer.json")
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=64, init_std=0.3)
    path = save_inference_checkpoint(folder / "tiny.ckpt", cfg.build(), tokenizer, {})
    folder.chmod(0o755)
    path.chmod(0o644)
    return path


@pytest.fixture
def container(serve_layers, checkpoint: Path) -> Iterator[str]:
    """The serve image on the host network, serving `checkpoint` on a free port of 127.0.0.1; its base URL."""
    port = free_port()
    run = ["docker", "run", "-d", "--network", "host", "-v", f"{checkpoint.parent}:/models:ro"]
    overrides = ["ckpt_path=/models/tiny.ckpt", "device=cpu", "serve.host=127.0.0.1", f"serve.port={port}"]
    name = subprocess.check_output([*run, f"{IMAGE}:serve", *overrides], text=True).strip()
    base, deadline = f"http://127.0.0.1:{port}", time.time() + 120
    try:
        while not healthy(base):
            state = ["docker", "inspect", "-f", "{{.State.Running}}", name]
            if subprocess.check_output(state, text=True).strip() != "true" or time.time() > deadline:
                logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                pytest.fail(f"the container did not serve:\n{(logs.stdout + logs.stderr)[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_serve_image_answers_health_and_a_completion(container, checkpoint):
    assert httpx.get(f"{container}/health", timeout=10).status_code == 200
    body = {"prompt": "def add(", "max_tokens": 12, "temperature": 0}
    response = httpx.post(f"{container}/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    model, tokenizer, _ = load_for_inference(checkpoint)
    sampling = SamplingConfig(max_new_tokens=12, temperature=0)
    expected = generate(model, [tokenizer.encode("def add(")], sampling, tokenizer.eos_id)
    assert response.json()["choices"][0]["text"] == tokenizer.decode(expected[0])


def test_a_one_line_code_change_rebuilds_only_the_llmexp_layer(serve_layers, tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in BUILD_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, checkout / name, ignore=shutil.ignore_patterns("*.whl", "__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, checkout / name)
    text = checkout / "src" / "llmexp" / "serving" / "text.py"
    text.write_text(text.read_text() + "# a one-line change\n")
    image = f"{IMAGE}-changed"
    try:
        changed = build_serve(checkout, image)
        installed = f"/opt/venv/lib/python3.11/site-packages/llmexp/serving/{text.name}"
        tail = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "tail", f"{image}:serve", "-n", "1"]
        last_line = subprocess.check_output([*tail, installed], text=True)
    finally:
        subprocess.run(["docker", "rmi", f"{image}:serve"], capture_output=True, timeout=120)
    assert last_line == "# a one-line change\n"  # the change is in the image
    # The last two layers copy and install the llmexp wheel; every one before them (the base, Python, all the
    # dependencies) is the same layer, reused.
    assert len(changed) == len(serve_layers)
    assert changed[:-2] == serve_layers[:-2]
