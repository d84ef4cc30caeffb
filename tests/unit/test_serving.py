"""The batching engine and the streamed-text rules of the server, in process."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from llmexp.errors import CheckpointError
from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.gpt import GPTConfig
from llmexp.serving.engine import BatchingEngine, GenerationRequest
from llmexp.serving.server import build_app
from llmexp.serving.text import TextStream
from llmexp.tokenizer import Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SERVE = {"max_batch_size": 4, "max_wait_ms": 1, "batching": "continuous", "max_tokens_limit": 8, "max_body_bytes": 1000,
         "cpu_threads": None, "request_timeout_s": 5, "model_name": None}  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load(ASSETS / "tokenizer.json")


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=64, init_std=0.3)
    return cfg.build().eval()


class Collector:
    """Records one request's tokens and how it ended."""

    def __init__(self, prompt: list[int], max_new: int, **kwargs):
        self.tokens: list[int] = []
        self.ended: tuple[str, str | None] | None = None
        self.done = threading.Event()
        self.request = GenerationRequest(
            prompt_ids=prompt,
            sampling=SamplingConfig(max_new_tokens=max_new, temperature=0, stop_at_eos=False),
            on_token=self.tokens.append,
            on_done=self.finish,
            **kwargs,
        )

    def finish(self, reason: str, error: str | None) -> None:
        self.ended = (reason, error)
        self.done.set()


@contextmanager
def engine_of(model, **settings):
    engine = BatchingEngine(model, eos_id=0, max_wait_ms=1, **settings).start()
    try:
        yield engine
    finally:
        engine.stop()


def test_every_request_gets_what_the_shared_generation_loop_gives_it_alone(model):
    prompts, limits = [[3, 4, 5], [7, 8, 9, 10, 11, 12], [20]], [9, 4, 12]
    collectors = [Collector(p, n) for p, n in zip(prompts, limits, strict=True)]
    with engine_of(model, max_batch_size=4) as engine:
        for collector in collectors:
            engine.submit(collector.request)
        assert all(c.done.wait(30) for c in collectors)
    for collector, prompt, limit in zip(collectors, prompts, limits, strict=True):
        expected = generate(model, [prompt], SamplingConfig(max_new_tokens=limit, temperature=0, stop_at_eos=False), 0)
        assert collector.tokens == expected[0]
        assert collector.ended == ("length", None)


@pytest.mark.parametrize("continuous", [True, False])
def test_a_short_request_joins_a_running_long_one_and_leaves_first(model, continuous):
    """Continuous batching: the short request is read into the running batch and ends while the long one goes on;
    static batching makes it wait for the long one to end."""
    long, short = Collector([3, 4, 5], 40), Collector([9, 10], 3)
    started, submitted = threading.Event(), threading.Event()
    record = long.request.on_token
    # The engine thread waits at the long request's tokens until the short one is queued: no race with the test.
    long.request.on_token = lambda token: (record(token), started.set(), submitted.wait(30))
    finished: list[str] = []
    for name, collector in (("long", long), ("short", short)):
        done = collector.request.on_done
        collector.request.on_done = lambda reason, err, name=name, done=done: (finished.append(name), done(reason, err))
    with engine_of(model, max_batch_size=4, continuous=continuous) as engine:
        engine.submit(long.request)
        assert started.wait(30)
        engine.submit(short.request)
        submitted.set()
        assert long.done.wait(30) and short.done.wait(30)
    assert finished == (["short", "long"] if continuous else ["long", "short"])
    alone = SamplingConfig(max_new_tokens=3, temperature=0, stop_at_eos=False)
    assert short.tokens == generate(model, [[9, 10]], alone, 0)[0] and len(long.tokens) == 40


def test_a_cancelled_row_stops_and_the_others_finish(model):
    first, second = Collector([3, 4], 10), Collector([5, 6], 10)
    original = first.request.on_token

    def cancel_after_two(token: int) -> None:
        original(token)
        if len(first.tokens) == 2:
            first.request.cancelled.set()

    first.request.on_token = cancel_after_two
    with engine_of(model, max_batch_size=4) as engine:
        engine.submit(first.request)
        engine.submit(second.request)
        assert first.done.wait(30) and second.done.wait(30)
    assert first.ended == ("cancelled", None) and len(first.tokens) == 2
    assert second.ended == ("length", None) and len(second.tokens) == 10


def test_the_engine_survives_a_failing_batch(model):
    engine = BatchingEngine(model, eos_id=0, max_batch_size=4, max_wait_ms=1).start()
    try:
        broken = Collector([3, 4], 5)
        broken.request.on_token = lambda token: 1 / 0
        engine.submit(broken.request)
        assert broken.done.wait(30) and broken.ended[0] == "error" and "ZeroDivisionError" in broken.ended[1]
        healthy = Collector([3, 4], 5)
        engine.submit(healthy.request)
        assert healthy.done.wait(30) and healthy.ended == ("length", None) and len(healthy.tokens) == 5
        assert engine.is_alive()
    finally:
        engine.stop()


def test_the_engine_refuses_what_does_not_fit_the_context(model):
    engine = BatchingEngine(model, eos_id=0)
    with pytest.raises(ValueError, match="exceed the context of 64"):
        engine.submit(Collector(list(range(1, 60)), 10).request)


def test_streamed_text_never_splits_a_character_and_joins_to_the_whole(tokenizer):
    ids = tokenizer.encode("naïve café — 東京 ok")
    stream = TextStream(tokenizer, stops=[])
    pieces = [stream.push(token) for token in ids] + [stream.finish()]
    assert "".join(pieces) == tokenizer.decode(ids)
    assert not any("\ufffd" in piece for piece in pieces)


def test_a_stop_string_is_held_back_then_cut(tokenizer):
    ids = tokenizer.encode("x = 1\n<|user|>\nmore")
    stream = TextStream(tokenizer, stops=["<|user|>"])
    pieces = [stream.push(token) for token in ids] + [stream.finish()]
    assert "".join(pieces) == "x = 1\n"
    assert stream.stopped and stream.text == "x = 1\n"


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_the_server_refuses_a_checkpoint_that_would_run_code(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"llmexp": {}, "state_dict": {}, "payload": _RunsCodeWhenUnpickled(marker)}, tmp_path / "evil.ckpt")
    cfg = OmegaConf.create({"ckpt_path": str(tmp_path / "evil.ckpt"), "device": "cpu", "serve": SERVE})
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        build_app(cfg)
    assert not marker.exists()


def test_the_server_points_from_a_lora_checkpoint_to_the_merged_one(tmp_path):
    torch.save({"llmexp": {}, "state_dict": {"model.blocks.0.attn.qkv.lora_A.default.weight": torch.zeros(1)}},
               tmp_path / "last.ckpt")  # fmt: skip
    cfg = OmegaConf.create({"ckpt_path": str(tmp_path / "last.ckpt"), "device": "cpu", "serve": SERVE})
    with pytest.raises(CheckpointError, match=r"merged\.ckpt"):
        build_app(cfg)


def test_chat_prompts_use_the_template_stored_in_the_checkpoint(tmp_path, model, tokenizer):
    import asyncio

    import httpx

    from llmexp.artifacts.inference import save_inference_checkpoint
    from llmexp.tokenizer import ChatTemplate

    template = ChatTemplate(user="### Question:\n{content}\n", generation_prompt="### Answer:\n")
    ckpt = save_inference_checkpoint(tmp_path / "sft.ckpt", model, tokenizer, {"chat_template": template.to_dict()})
    app = build_app(OmegaConf.create({"ckpt_path": str(ckpt), "device": "cpu", "serve": SERVE}))
    messages = [{"role": "user", "content": "What is 2 + 2?"}]

    async def ask() -> dict:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                body = {"messages": messages, "max_tokens": 2}
                return (await client.post("/v1/chat/completions", json=body)).json()

    usage = asyncio.run(ask())["usage"]
    assert usage["prompt_tokens"] == len(tokenizer.encode(template.render_prompt(messages)))
    assert usage["prompt_tokens"] != len(tokenizer.encode(ChatTemplate().render_prompt(messages)))
