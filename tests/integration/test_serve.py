"""`llmexp-serve` as a real process on 127.0.0.1: OpenAI-style answers, streaming, concurrency, bad input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch

from llmexp.artifacts.inference import load_for_inference, save_inference_checkpoint
from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer
from server_process import running_server

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MAX_TOKENS_LIMIT = 48
BODY_LIMIT = 20_000
CONTEXT = 96


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT with large random weights (clear argmax margins, so greedy answers are unambiguous)."""
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=CONTEXT, init_std=0.3)
    return save_inference_checkpoint(tmp_path_factory.mktemp("serve") / "tiny.ckpt", cfg.build(), tokenizer, {})


@pytest.fixture(scope="module")
def reference(checkpoint: Path):
    """Greedy continuation computed in this process with the shared generation loop: what the server must answer."""
    model, tokenizer, _ = load_for_inference(checkpoint)

    def continue_texts(prompts: list[str], max_tokens: int) -> list[str]:
        sampling = SamplingConfig(max_new_tokens=max_tokens, temperature=0)
        outputs = generate(model, [tokenizer.encode(p) for p in prompts], sampling, tokenizer.eos_id)
        return [tokenizer.decode(ids) for ids in outputs]

    return continue_texts


@pytest.fixture(scope="module")
def server(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    limits = [f"serve.max_tokens_limit={MAX_TOKENS_LIMIT}", f"serve.max_body_bytes={BODY_LIMIT}"]
    with running_server(checkpoint, log, *limits, "serve.max_batch_size=16", "serve.max_wait_ms=20") as base:
        yield base


def sse_events(response: httpx.Response) -> list:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def complete(base: str, prompt: str, max_tokens: int, stream: bool = False, **extra) -> tuple[str, str]:
    """(text, finish_reason) of one completion, joined from the stream when streaming."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": stream, **extra}
    with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        if not stream:
            choice = json.loads(response.read())["choices"][0]
            return choice["text"], choice["finish_reason"]
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [e["choices"][0] for e in events[:-1]]
    assert all(e["object"] == "text_completion" for e in events[:-1])
    return "".join(c["text"] for c in chunks), chunks[-1]["finish_reason"]


def test_completion_equals_the_shared_generation_loop(server, reference):
    text, finish = complete(server, "def add(", 20)
    assert text == reference(["def add("], 20)[0]
    assert finish in ("length", "stop")


def test_streamed_pieces_join_to_the_same_text(server, reference):
    text, finish = complete(server, "The for statement", 24, stream=True)
    assert text == reference(["The for statement"], 24)[0]
    assert finish in ("length", "stop")


def test_a_body_sent_as_curl_d_sends_it_is_read_as_json(server, reference):
    body = json.dumps({"prompt": "def add(", "max_tokens": 6, "temperature": 0})
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = httpx.post(f"{server}/v1/completions", content=body, headers=headers, timeout=60)
    assert response.json()["choices"][0]["text"] == reference(["def add("], 6)[0]


def test_chat_completion_streamed_and_not(server):
    body = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 12, "temperature": 0}
    whole = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60).json()
    assert whole["object"] == "chat.completion"
    message = whole["choices"][0]["message"]
    assert message["role"] == "assistant"
    with httpx.stream("POST", f"{server}/v1/chat/completions", json={**body, "stream": True}, timeout=60) as response:
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == message["content"]
    assert whole["usage"]["completion_tokens"] >= 1


def test_32_concurrent_clients_are_all_answered_correctly_in_batches(server, reference):
    prompts = [f"import os{i} as x" if i % 2 else f"class C{i}:" for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda i: complete(server, prompts[i], 16, stream=i % 3 == 0)[0], range(32)))
    assert answers == reference(prompts, 16)
    metrics = httpx.get(f"{server}/metrics").text
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith("llmexp_")}
    assert values["llmexp_batch_size_sum"] > values["llmexp_batch_size_count"]  # some requests shared a batch


def test_several_prompts_and_samples_get_one_indexed_choice_each(server, reference):
    body = {"prompt": ["def add(", "class "], "n": 2, "max_tokens": 8, "temperature": 0}
    choices = httpx.post(f"{server}/v1/completions", json=body, timeout=60).json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    first, second = reference(["def add(", "class "], 8)
    assert [c["text"] for c in choices] == [first, first, second, second]


def test_sampling_with_a_seed_is_reproducible(server):
    first = complete(server, "x = ", 16, temperature=1.0, seed=7)[0]
    assert complete(server, "x = ", 16, temperature=1.0, seed=7)[0] == first


def test_stop_string_ends_the_text_before_it(server, reference):
    full = reference(["def add("], 20)[0]
    stop = full[5:8]
    text, finish = complete(server, "def add(", 20, stop=[stop])
    assert text == full[: full.index(stop)]
    assert finish == "stop"


BAD_REQUESTS = {
    "not json": (b"{'prompt': 'x'", 400),
    "json array": (b"[1, 2]", 400),
    "empty body": (b"", 400),
    "missing prompt": (b'{"max_tokens": 4}', 400),
    "prompt of wrong type": (b'{"prompt": 3}', 400),
    "max_tokens as a string": (b'{"prompt": "x", "max_tokens": "4"}', 400),
    "max_tokens zero": (b'{"prompt": "x", "max_tokens": 0}', 400),
    "max_tokens over the limit": (json.dumps({"prompt": "x", "max_tokens": MAX_TOKENS_LIMIT + 1}).encode(), 400),
    "prompt longer than the context": (json.dumps({"prompt": "word " * CONTEXT, "max_tokens": 4}).encode(), 400),
    "prompt plus max_tokens over the context": (json.dumps({"prompt": "a " * 60, "max_tokens": 40}).encode(), 400),
    "temperature out of range": (b'{"prompt": "x", "temperature": 9}', 400),
    "stream not a boolean": (b'{"prompt": "x", "stream": "yes"}', 400),
    "too many stop strings": (b'{"prompt": "x", "stop": ["a","b","c","d","e"]}', 400),
    "logprobs requested": (b'{"prompt": "x", "logprobs": 3}', 400),
    "body over the size limit": (json.dumps({"prompt": "x" * BODY_LIMIT}).encode(), 413),
    "JSON nested 9,000 deep": (b'{"prompt": ' + b"[" * 9000 + b"]" * 9000 + b"}", 400),
    "a 5,000-digit integer": (b'{"prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}", 400),
    "a lone surrogate in the prompt": (b'{"prompt": "abc \\ud800 def"}', 400),
    "repetition_penalty 1e-300": (b'{"prompt": "x", "repetition_penalty": 1e-300}', 400),
    "temperature NaN": (b'{"prompt": "x", "temperature": NaN}', 400),
    "stream_options without stream": (b'{"prompt": "x", "stream_options": {"include_usage": true}}', 400),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_completion_requests_get_a_clear_4xx(server, name):
    body, status = BAD_REQUESTS[name]
    response = httpx.post(f"{server}/v1/completions", content=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and len(error["message"]) > 10


BAD_CHATS = {
    "no messages": {"messages": []},
    "a lone surrogate in a message": {"messages": [{"role": "user", "content": "hi \ud800"}]},
    "unknown role": {"messages": [{"role": "robot", "content": "hi"}]},
    "content not a string": {"messages": [{"role": "user", "content": 5}]},
    "ends with the assistant": {"messages": [{"role": "assistant", "content": "hi"}]},
    "n too large": {"messages": [{"role": "user", "content": "hi"}], "n": 100},
}


@pytest.mark.parametrize("name", sorted(BAD_CHATS))
def test_bad_chat_requests_get_400(server, name):
    body = json.dumps(BAD_CHATS[name]).encode()  # ASCII escapes: httpx's json= cannot encode a lone surrogate
    response = httpx.post(f"{server}/v1/chat/completions", content=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]


def test_oversized_chunked_body_is_refused_without_a_length_header(server):
    def chunks():
        for _ in range(BODY_LIMIT // 1000 + 5):
            yield b" " * 1000

    response = httpx.post(f"{server}/v1/completions", content=chunks(), timeout=30)
    assert response.status_code == 413


def test_unknown_route_and_wrong_method_are_4xx(server):
    assert httpx.post(f"{server}/v1/nothing", json={}).status_code == 404
    assert httpx.get(f"{server}/v1/completions").status_code == 405


def test_server_keeps_serving_after_bad_requests_and_counts_them(server, reference):
    for body, _ in BAD_REQUESTS.values():
        httpx.post(f"{server}/v1/completions", content=body, timeout=30)
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    assert complete(server, "def add(", 8)[0] == reference(["def add("], 8)[0]
    metrics = httpx.get(f"{server}/metrics").text
    assert 'llmexp_requests_total{endpoint="/v1/completions",status="400"}' in metrics
    for name in ("llmexp_request_latency_seconds_bucket", "llmexp_generation_tokens_per_second", "llmexp_queue_depth"):
        assert name in metrics


def test_a_request_with_a_vanishing_temperature_never_fails_the_requests_batched_with_it(server, reference):
    prompts, temperatures = ["def add(", "class ", "import os", "x = "], [0, 1e-300, 0, 0]

    def answer(i: int) -> str:
        return complete(server, prompts[i], 8, temperature=temperatures[i])[0]

    for _ in range(3):  # four requests at once, decoded together (serve.max_wait_ms=20)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(answer, range(4)))
        assert answers == reference(prompts, 8)  # a temperature of 1e-300 is greedy in the limit


@pytest.fixture
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def test_the_openai_client_limits_a_chat_answer_with_max_completion_tokens(client):
    messages = [{"role": "user", "content": "Say hi"}]
    free = client.chat.completions.create(model="m", messages=messages, temperature=0)
    limited = client.chat.completions.create(model="m", messages=messages, temperature=0, max_completion_tokens=3)
    assert free.usage.completion_tokens > 3
    assert limited.usage.completion_tokens == 3 and limited.choices[0].finish_reason == "length"


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_the_openai_client_gets_the_usage_of_a_stream_in_a_last_chunk(client, endpoint):
    options = {"stream": True, "stream_options": {"include_usage": True}, "max_tokens": 6, "temperature": 0}
    if endpoint == "chat":
        chunks = list(
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], **options)
        )
        texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    else:
        chunks = list(client.completions.create(model="m", prompt="def add(", **options))
        texts = [c.choices[0].text for c in chunks if c.choices]
    *streamed, last = chunks
    assert last.choices == [] and last.usage.completion_tokens == 6
    assert last.usage.total_tokens == last.usage.prompt_tokens + 6
    assert all(c.usage is None for c in streamed) and "".join(texts)


def test_the_openai_client_may_send_developer_messages_which_are_system_messages(client):
    def ask(role: str):
        messages = [{"role": role, "content": "Answer briefly."}, {"role": "user", "content": "Say hi"}]
        return client.chat.completions.create(model="m", messages=messages, max_tokens=8, temperature=0)

    developer, system = ask("developer"), ask("system")
    assert developer.choices[0].message.content == system.choices[0].message.content
    assert developer.usage.prompt_tokens == system.usage.prompt_tokens
