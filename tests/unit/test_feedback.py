"""Feedback in process: completion ids kept for feedback, the store's last word, the rows llmexp-feedback makes, the
arena of one checkpoint at two sampling settings, and the Elo table."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from omegaconf import OmegaConf

from llmexp.artifacts.inference import save_inference_checkpoint
from llmexp.errors import ConfigError
from llmexp.models.gpt import GPTConfig
from llmexp.serving.arena import elo_table
from llmexp.serving.feedback_data import feedback_rows
from llmexp.serving.feedback_store import Answer, Completion, Feedback, FeedbackStore, latest
from llmexp.serving.server import build_app
from llmexp.tokenizer import Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CHAT = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16, max_seq_len=64, init_std=0.3)
    return save_inference_checkpoint(tmp_path_factory.mktemp("feedback") / "tiny.ckpt", cfg.build(), tokenizer, {})


def serve_cfg(checkpoint: Path, store: Path, **arena):
    arena = {"max_tokens": 4, "contestants": [{"temperature": 0.7}, {"temperature": 1.2}], **arena}
    serve = {"max_batch_size": 4, "max_wait_ms": 1, "batching": "continuous", "max_tokens_limit": 8,
             "max_body_bytes": 10_000, "cpu_threads": None, "request_timeout_s": 30, "model_name": None,
             "feedback_path": str(store), "arena": arena}  # fmt: skip
    return OmegaConf.create({"ckpt_path": str(checkpoint), "device": "cpu", "serve": serve})


def talk(cfg, conversation):
    """Run `conversation(client)` against the app of `cfg`, started and stopped as uvicorn would."""
    app = build_app(cfg)

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
                return await conversation(client)

    return asyncio.run(run())


def joined(response: httpx.Response, chat: bool, stream: bool) -> tuple[str, str]:
    """(id, text) of a completion response, streamed or not."""
    if not stream:
        body = response.json()
        choice = body["choices"][0]
        return body["id"], choice["message"]["content"] if chat else choice["text"]
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert len({event["id"] for event in events}) == 1  # every chunk carries the completion's id
    pieces = [e["choices"][0]["delta"].get("content", "") if chat else e["choices"][0]["text"] for e in events]
    return events[0]["id"], "".join(pieces)


def test_every_kind_of_completion_carries_an_id_that_feedback_can_name(checkpoint, tmp_path):
    requests = [(path, body, stream) for path, body in (("/v1/completions", {"prompt": "def add("}),
                                                        ("/v1/chat/completions", {"messages": CHAT}))
                for stream in (False, True)]  # fmt: skip

    async def conversation(client):
        seen = []
        for path, body, stream in requests:
            response = await client.post(path, json={**body, "max_tokens": 4, "stream": stream})
            ident, text = joined(response, "chat" in path, stream)
            rated = await client.post("/v1/feedback", json={"completion_id": ident, "rating": 4})
            assert rated.status_code == 200, rated.text
            seen.append((ident, text))
        return seen

    seen = talk(serve_cfg(checkpoint, tmp_path / "fb.db"), conversation)
    assert len({ident for ident, _ in seen}) == 4
    assert [ident.split("-")[0] for ident, _ in seen] == ["cmpl", "cmpl", "chatcmpl", "chatcmpl"]
    store = FeedbackStore(tmp_path / "fb.db")
    kept = [store.completion(ident) for ident, _ in seen]
    assert [c.answers[0].text for c in kept] == [text for _, text in seen]  # what the client saw is what is kept
    assert [c.answers[0].prompt for c in kept] == ["def add(", "def add(", CHAT, CHAT]
    assert [f.completion_id for f in store.feedback()] == [ident for ident, _ in seen]


def test_the_arena_of_one_checkpoint_at_two_temperatures_rates_a_vote(checkpoint, tmp_path):
    async def conversation(client):
        before = (await client.get("/v1/arena/leaderboard")).json()["data"]
        battle = (await client.post("/v1/arena/battle", json={"prompt": "Say hi"})).json()
        first, second = (answer["completion_id"] for answer in battle["answers"])
        vote = {"completion_id": first, "other_id": second, "preferred": "completion"}
        models = (await client.post("/v1/feedback", json=vote)).json()["models"]
        after = (await client.get("/v1/arena/leaderboard")).json()["data"]
        return before, models, after

    before, (winner, loser), after = talk(serve_cfg(checkpoint, tmp_path / "fb.db"), conversation)
    assert [row["model"] for row in before] == ["tiny t=0.7", "tiny t=1.2"]
    assert {winner, loser} == {"tiny t=0.7", "tiny t=1.2"}
    assert [(row["model"], row["rating"], row["games"]) for row in after] == [(winner, 1016.0, 1), (loser, 984.0, 1)]


def test_bad_battles_get_a_clear_400(checkpoint, tmp_path):
    too_long = json.dumps({"prompt": "word " * 80}).encode()  # more tokens than the model's context of 64
    bodies = [b"{", b"[]", b"{}", b'{"prompt": ""}', b'{"prompt": 3}', b'{"prompt": "x", "n": 2}', too_long]

    async def conversation(client):
        answers = [await client.post("/v1/arena/battle", content=body) for body in bodies]
        return answers, (await client.get("/health")).json()["status"]

    answers, health = talk(serve_cfg(checkpoint, tmp_path / "fb.db"), conversation)
    assert [a.status_code for a in answers] == [400] * len(bodies), [a.text for a in answers]
    assert all(a.json()["error"]["message"] for a in answers) and health == "ok"


@pytest.mark.parametrize(
    ("contestants", "message"),
    [
        ([{"temperature": 0.7, "colour": "red"}, {}], "unexpected keyword argument 'colour'"),
        ([{"temperature": 0.7}], "at least two"),
        ([{"temperature": 5.0}, {}], r"contestants\[0\]: temperature: Input should be less than or equal to 2"),
        ([{"name": "same"}, {"name": "same", "temperature": 1.0}], "different names"),
    ],
)
def test_a_wrong_arena_is_refused_at_start_up(checkpoint, tmp_path, contestants, message):
    with pytest.raises(ConfigError, match=message):
        build_app(serve_cfg(checkpoint, tmp_path / "fb.db", contestants=contestants))


def test_a_store_path_that_cannot_be_a_database_is_refused_at_start_up(checkpoint, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"serve\.feedback_path=.*not usable as the store"):
        build_app(serve_cfg(checkpoint, tmp_path / "file" / "fb.db"))


def test_elo_moves_by_surprise():
    assert elo_table([("a", "b", 0.5)], ["a", "b"])[0]["rating"] == 1000.0  # a tie between equals
    after_one = elo_table([("a", "b", 1.0)], ["a", "b", "c"])
    assert [(r["model"], r["rating"], r["wins"], r["losses"]) for r in after_one] == [
        ("a", 1016.0, 1, 0), ("c", 1000.0, 0, 0), ("b", 984.0, 0, 1)
    ]  # fmt: skip
    upset = {r["model"]: r["rating"] for r in elo_table([("a", "b", 1.0), ("b", "a", 1.0)], ["a", "b"])}
    assert upset["b"] - 984.0 > 16.0  # beating a stronger player gains more than beating an equal


def test_the_last_word_on_an_answer_or_a_pair_counts():
    feedback = [
        Feedback("x", rating=1, seq=1),
        Feedback("x", other_id="y", preferred="completion", seq=2),
        Feedback("x", rating=5, seq=3),
        Feedback("y", other_id="x", preferred="completion", seq=4),  # the same pair, the other way round
        Feedback("x", choice=1, rating=2, seq=5),
    ]
    assert [item.seq for item in latest(feedback)] == [3, 4, 5]


def test_feedback_becomes_sft_and_preference_rows(tmp_path):
    store = FeedbackStore(tmp_path / "fb.db")
    store.add_completion(Completion("c1", "m", "chat", [Answer(CHAT, "hi!"), Answer(CHAT, "go away")], {}))
    store.add_completion(Completion("c2", "m", "text", [Answer("def f(", "x):")], {}))
    store.add_completion(Completion("c3", "m", "chat", [Answer(CHAT, "hello")], {}))
    for item in (Feedback("c1", rating=5), Feedback("c1", choice=1, rating=1), Feedback("c2", rating=4),
                 Feedback("c3", other_id="c1", other_choice=1, preferred="completion"),
                 Feedback("c3", other_id="c1", preferred="tie"), Feedback("c3", rating=3)):  # fmt: skip
        store.add_feedback(item)
    assert feedback_rows(store, "sft", 4) == [
        {"messages": [*CHAT, {"role": "assistant", "content": "hi!"}]},
        {"messages": [{"role": "user", "content": "def f("}, {"role": "assistant", "content": "x):"}]},
    ]
    assert feedback_rows(store, "preference", 4) == [
        {"messages": CHAT, "chosen": "hello", "rejected": "go away"},  # preferred to another answer
        {"messages": CHAT, "chosen": "hi!", "rejected": "go away"},  # rated 5 and 1 on one prompt
        {"messages": CHAT, "chosen": "hi!", "rejected": "hello"},  # rated 5 and 3
    ]


WRITER = """
import os, sys
from llmexp.serving.feedback_store import Feedback, FeedbackStore
store = FeedbackStore(sys.argv[1])
for index in range(5):
    store.add_feedback(Feedback("c1", rating=5))
    os.write(1, b"acknowledged")
"""


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace to watch the system calls")
def test_each_feedback_is_on_disk_before_it_is_acknowledged(tmp_path):
    """strace shows an fsync/fdatasync of the write-ahead log between one acknowledgement and the next."""
    trace = tmp_path / "trace"
    command = ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,write", "-o", str(trace),
               sys.executable, "-c", WRITER, str(tmp_path / "fb.db")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr[-2000:]
    calls = [line for line in trace.read_text().splitlines() if "fb.db-wal" in line or "acknowledged" in line]
    synced, acknowledged = False, 0
    for call in calls:
        if "acknowledged" in call:
            assert synced, "\n".join(calls)  # acknowledged without a sync of the log since the previous one
            synced, acknowledged = False, acknowledged + 1
        elif "sync(" in call:
            synced = True
    assert acknowledged == 5
