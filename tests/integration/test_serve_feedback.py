"""Feedback against `llmexp-serve` as a real process: bad feedback gets a clear 4xx and the server goes on,
acknowledged feedback survives a killed server, what users said becomes data that task=sft and task=dpo train on, and
the rating page works in a real browser (chromium): a vote is stored and the Elo table moves.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from browser import chromium, console_errors
from llmexp.artifacts.inference import save_inference_checkpoint
from llmexp.models.gpt import GPTConfig
from llmexp.serving.feedback_store import FeedbackStore
from llmexp.tokenizer import Tokenizer
from llmexp.training.run import train
from server_process import running_server, server_process

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BODY_LIMIT = 5_000


def tiny_checkpoint(path: Path, seed: int) -> Path:
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, max_seq_len=64, init_std=0.3)
    return save_inference_checkpoint(path, cfg.build(), tokenizer, {})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return tiny_checkpoint(folder / "alpha.ckpt", 0), tiny_checkpoint(folder / "beta.ckpt", 1)


@pytest.fixture(scope="module")
def server(checkpoints: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    """(base URL, store path) of a server of alpha.ckpt whose rating page pits it against beta.ckpt, set on the
    command line as a user would; its store starts empty."""
    log = tmp_path_factory.mktemp("feedback-server") / "server.log"
    arena = ",".join(f"{{ckpt_path:'{path}'}}" for path in checkpoints)
    with running_server(
        checkpoints[0], log, f"serve.max_body_bytes={BODY_LIMIT}", f"serve.arena.contestants=[{arena}]"
    ) as base:
        yield base, log.parent / "feedback.db"


def chat(base: str, content: str, n: int = 1, seed: int = 0) -> str:
    """The id of a sampled chat completion of `n` answers."""
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 6, "n": n, "seed": seed}
    response = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def bad_feedback(first: str, second: str) -> dict[str, tuple[bytes, int]]:
    """Feedback bodies that must be refused (first: a completion of two answers; second: one to another prompt)."""
    cases = {
        "not json": {"completion_id": first, "rating": 5},
        "empty body": b"",
        "a json array": [first],
        "unknown key": {"completion_id": first, "ratin": 5},
        "rating zero": {"completion_id": first, "rating": 0},
        "rating six": {"completion_id": first, "rating": 6},
        "rating as a string": {"completion_id": first, "rating": "5"},
        "neither rating nor preference": {"completion_id": first},
        "rating and preference": {"completion_id": first, "rating": 5, "other_id": first, "preferred": "tie"},
        "preferred without other_id": {"completion_id": first, "preferred": "completion"},
        "preferred not a choice": {"completion_id": first, "other_id": first, "other_choice": 1, "preferred": "A"},
        "an answer against itself": {"completion_id": first, "other_id": first, "preferred": "tie"},
        "id too long": {"completion_id": "x" * 65, "rating": 5},
        "negative choice": {"completion_id": first, "choice": -1, "rating": 5},
        "text too long": {"completion_id": first, "rating": 5, "text": "x" * 4001},
        "unknown completion": {"completion_id": "chatcmpl-000", "rating": 5},
        "choice it does not have": {"completion_id": first, "choice": 2, "rating": 5},
        "answers to different prompts": {"completion_id": first, "other_id": second, "preferred": "other"},
        "body over the size limit": {"completion_id": first, "rating": 5, "text": "x" * BODY_LIMIT},
    }
    status = {"unknown completion": 404, "body over the size limit": 413}
    encoded = {name: body if isinstance(body, bytes) else json.dumps(body).encode() for name, body in cases.items()}
    encoded["not json"] = encoded["not json"][:-1]
    return {name: (body, status.get(name, 400)) for name, body in encoded.items()}


def test_bad_feedback_gets_a_clear_4xx_stores_nothing_and_the_server_goes_on(server):
    base, store = server
    first, second = chat(base, "Say hi", n=2), chat(base, "Say bye")
    before = len(FeedbackStore(store).feedback())
    for name, (body, status) in bad_feedback(first, second).items():
        response = httpx.post(f"{base}/v1/feedback", content=body, timeout=30)
        assert response.status_code == status, (name, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "\n" not in error["message"] and len(error["message"]) > 10
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    assert len(FeedbackStore(store).feedback()) == before
    good = {"completion_id": first, "choice": 1, "rating": 5, "text": "clear"}
    assert httpx.post(f"{base}/v1/feedback", json=good, timeout=30).json()["models"] == ["alpha"]
    metrics = httpx.get(f"{base}/metrics").text
    assert 'llmexp_requests_total{endpoint="/v1/feedback",status="400"}' in metrics


def test_acknowledged_feedback_survives_a_killed_server(checkpoints, tmp_path):
    with server_process(checkpoints[0], tmp_path / "server.log") as (process, base):
        ident = chat(base, "Say hi", n=2)
        bodies = [
            {"completion_id": ident, "choice": i % 2, "rating": 1 + i % 5, "text": f"vote {i}"} for i in range(24)
        ]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda b: httpx.post(f"{base}/v1/feedback", json=b, timeout=30), bodies))
        process.send_signal(signal.SIGKILL)  # at once: no shutdown, no checkpoint of the write-ahead log
        assert process.wait(timeout=30) == -signal.SIGKILL
    assert all(answer.status_code == 200 for answer in answers)
    acknowledged = sorted(int(answer.json()["id"].removeprefix("feedback-")) for answer in answers)
    kept = FeedbackStore(tmp_path / "feedback.db").feedback()
    assert [item.seq for item in kept] == acknowledged
    assert sorted(item.text for item in kept) == sorted(body["text"] for body in bodies)


def export(store: Path, dataset: str, out: Path) -> list[dict]:
    command = [sys.executable, "-m", "llmexp.cli.feedback", f"store={store}", f"dataset={dataset}", f"out={out}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


TRAIN = (
    "model=gpt_tiny", "data.block_size=32", "data.batch_size=2", "data.val_fraction=0.25", "trainer.max_steps=2",
    "trainer.val_check_interval=2", "trainer.limit_val_batches=1", "callbacks=minimal", "scheduler.warmup_steps=1",
)  # fmt: skip


@pytest.mark.slow
def test_feedback_from_the_server_trains_sft_and_dpo(server, make_cfg, tmp_path):
    """Two sampled answers to each of eight prompts: the first rated 5, the second 1, and the first preferred."""
    base, store = server
    for index in range(8):
        ident = chat(base, f"Question {index}?", n=2, seed=index)
        for vote in ({"choice": 0, "rating": 5}, {"choice": 1, "rating": 1},
                     {"other_id": ident, "other_choice": 1, "preferred": "completion"}):  # fmt: skip
            assert (
                httpx.post(f"{base}/v1/feedback", json={"completion_id": ident, **vote}, timeout=30).status_code == 200
            )
    sft = export(store, "sft", tmp_path / "sft.jsonl")
    pairs = export(store, "preference", tmp_path / "pairs.jsonl")
    assert sum(row["messages"][0]["content"].startswith("Question") for row in sft) == 8
    assert sum(row["messages"][0]["content"].startswith("Question") for row in pairs) == 8
    for recipe, data in (("sft", tmp_path / "sft.jsonl"), ("dpo", tmp_path / "pairs.jsonl")):
        result = train(make_cfg(f"experiment={recipe}", f"data.train_file={data}", *TRAIN, run_dir=tmp_path / recipe))
        assert result["step"] == 2 and result["val/loss"] == result["val/loss"], result  # trained; loss not NaN


def test_the_rating_page_stores_a_vote_and_updates_the_table(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    base, store = server
    with chromium(tmp_path / "profile") as page:
        page.get(f"{base}/arena")

        def table() -> dict[str, list[str]]:  # read in one script: the rows are replaced as votes come in
            rows = page.execute_script(
                "return [...document.querySelectorAll('#leaderboard tbody tr')]"
                ".map(tr => [...tr.cells].map(td => td.textContent))"
            )
            return {cells[0]: cells[1:] for cells in rows}

        WebDriverWait(page, 30).until(lambda _: len(table()) == 2)
        before = table()
        assert set(before) == {"alpha t=0.7", "beta t=0.7"}
        page.find_element(By.ID, "prompt").send_keys("Which is larger, 3 or 5?")
        page.find_element(By.ID, "ask").click()
        WebDriverWait(page, 60).until(lambda _: page.find_element(By.ID, "vote-a").is_enabled())
        page.find_element(By.ID, "vote-a").click()
        WebDriverWait(page, 30).until(lambda _: table() != before)
        winner = page.find_element(By.ID, "model-a").text.strip("()")
        loser = page.find_element(By.ID, "model-b").text.strip("()")
        after = table()
        assert console_errors(page) == []
    assert {winner, loser} == set(before)
    assert float(after[winner][0]) > float(before[winner][0]) and float(after[loser][0]) < float(before[loser][0])
    assert int(after[winner][4]) == int(before[winner][4]) + 1  # games
    kept = FeedbackStore(store)
    vote = kept.feedback()[-1]
    assert vote.preferred == "completion"
    assert [kept.completion(vote.completion_id).model, kept.completion(vote.other_id).model] == [winner, loser]
