"""The HTTP app: OpenAI-compatible /v1/completions and /v1/chat/completions (JSON or SSE), /health, /metrics.

Bodies are read and parsed here rather than by FastAPI, so that every way a body can be wrong (too large, not JSON,
wrong types, out of range, too long for the context) gets a 4xx with one clear message in OpenAI's error shape, and
so that `curl -d` (form content type) works as in the README.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmexp.models.generation import SamplingConfig
from llmexp.serving.engine import BatchingEngine, GenerationRequest
from llmexp.serving.handoff import Handoff
from llmexp.serving.metrics import ServerMetrics
from llmexp.serving.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields, describe
from llmexp.serving.text import TextStream
from llmexp.tokenizer import ChatTemplate, Tokenizer


@dataclass
class ServeSettings:
    """Limits and names of one server (conf/serve.yaml `serve:`)."""

    model_name: str = "llmexp"
    max_tokens_limit: int = 512  # the largest max_tokens a request may ask for
    max_body_bytes: int = 1_000_000
    request_timeout_s: float = 300.0


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


def error_body(message: str, kind: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


async def read_json(request: Request, limit: int) -> object:
    """The body as JSON, refusing bodies over `limit` bytes before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
    if not body:
        raise ApiError(400, "request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply to be a request") from None
    except ValueError as err:  # not JSON, not UTF-8, or an integer longer than Python converts
        raise ApiError(400, f"request body is not valid JSON: {str(err)[:200]}") from None


def validate(model: type[BaseModel], data: object) -> BaseModel:
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        message, param = describe(err)
        raise ApiError(400, message, param) from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply to be a request") from None


class Choice:
    """One sequence being generated for a request: the engine's events arrive on the request's asyncio queue."""

    def __init__(self, index: int, prompt_ids: list[int], max_new_tokens: int, stream: TextStream):
        self.index, self.prompt_ids, self.max_new_tokens, self.text = index, prompt_ids, max_new_tokens, stream
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.request: GenerationRequest | None = None


class Server:
    """Turns validated requests into engine requests and engine events into OpenAI-shaped responses."""

    def __init__(self, engine: BatchingEngine, tokenizer: Tokenizer, settings: ServeSettings, chat: ChatTemplate):
        self.engine, self.tokenizer, self.settings, self.chat = engine, tokenizer, settings, chat
        self.metrics = ServerMetrics()
        engine.on_batch = self.metrics.observe_batch
        self.handoff: Handoff | None = None
        self.on_complete = None  # async (id, body, choices) -> None, called with each answer (serving.feedback)

    def plan(self, body: SamplingFields, prompts: list[str], default_stops: list[str]) -> list[Choice]:
        """One Choice per prompt and sample, after checking that each fits the limits and the model's context."""
        context, limit = self.engine.context_length, self.settings.max_tokens_limit
        if body.max_tokens is not None and body.max_tokens > limit:
            raise ApiError(400, f"max_tokens={body.max_tokens} exceeds this server's limit of {limit}", "max_tokens")
        choices: list[Choice] = []
        for prompt in prompts:
            ids = self.tokenizer.encode(prompt) or [self.tokenizer.eos_id]
            room = self.engine.room(len(ids))
            wanted = body.max_tokens if body.max_tokens is not None else min(limit, room)
            if wanted < 1 or wanted > room:
                raise ApiError(
                    400,
                    f"the prompt has {len(ids)} tokens; with max_tokens={max(wanted, 1)} that exceeds the model's "
                    f"context of {context} tokens (shorten the prompt or lower max_tokens)",
                    "messages" if isinstance(body, ChatCompletionRequest) else "prompt",
                )
            for _ in range(body.n):
                stream = TextStream(self.tokenizer, [*body.stop, *default_stops])
                choices.append(Choice(len(choices), ids, wanted, stream))
        return choices

    def start(self, body: SamplingFields, choices: list[Choice]) -> asyncio.Queue:
        """Submit every choice; return the queue on which (choice, event, value) tuples arrive."""
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        if self.handoff is None or self.handoff.loop is not loop:
            self.handoff = Handoff(loop)
        put = self.handoff.put
        self.metrics.prompt_tokens.inc(sum(len(c.prompt_ids) for c in choices))
        for choice in choices:
            sampling = SamplingConfig(
                max_new_tokens=choice.max_new_tokens,
                temperature=body.temperature,
                top_k=body.top_k,
                top_p=body.top_p if body.top_p < 1.0 else None,
                repetition_penalty=body.repetition_penalty,
            )
            choice.request = GenerationRequest(
                prompt_ids=choice.prompt_ids,
                sampling=sampling,
                seed=None if body.seed is None else body.seed + choice.index,
                on_token=lambda token, c=choice: put(events, (c, "token", token)),
                on_done=lambda reason, err, c=choice: put(events, (c, "done", (reason, err))),
            )
            self.engine.submit(choice.request)
        return events

    async def pieces(self, choices: list[Choice], events: asyncio.Queue, started: float) -> AsyncIterator[tuple]:
        """(choice, new text, finish_reason or None) as generation proceeds, until every choice is finished."""
        open_choices, first = len(choices), True
        deadline = started + self.settings.request_timeout_s
        self.metrics.in_flight.inc()
        try:
            while open_choices:
                try:
                    choice, kind, value = await asyncio.wait_for(events.get(), max(0.0, deadline - time.perf_counter()))
                except TimeoutError:
                    raise ApiError(504, "generation timed out", kind="timeout_error") from None
                if choice.finish_reason is not None:
                    continue
                if kind == "token":
                    if first:
                        self.metrics.first_token.observe(time.perf_counter() - started)
                        first = False
                    piece = choice.text.push(value)
                    if choice.text.stopped:
                        choice.request.cancelled.set()
                        choice.finish_reason = "stop"
                        open_choices -= 1
                        yield choice, piece, "stop"
                    elif piece:
                        yield choice, piece, None
                    continue
                reason, error = value
                choice.finish_reason = "stop" if reason == "cancelled" else reason
                choice.error = error
                open_choices -= 1
                yield choice, choice.text.finish(), choice.finish_reason
        finally:
            self.metrics.in_flight.dec()
            for choice in choices:  # client gone or timed out: free the batch rows
                if choice.request is not None:
                    choice.request.cancelled.set()


def _usage(choices: list[Choice]) -> dict:
    prompt = sum(len(c.prompt_ids) for c in choices)
    completion = sum(len(c.text.ids) for c in choices)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(data: dict | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def create_app(server: Server) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if not server.engine.is_alive():
            server.engine.start()
        yield
        server.engine.stop()

    app = FastAPI(title="llmexp", lifespan=lifespan)
    settings, metrics = server.settings, server.metrics

    def record(request: Request, status: int) -> None:
        started = getattr(request.state, "started", None)
        if request.url.path.startswith("/v1/") and started is not None:
            metrics.observe_request(request.url.path, status, time.perf_counter() - started)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        record(request, err.status)
        return JSONResponse(error_body(err.message, err.kind, err.param), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}"
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        record(request, 500)
        return JSONResponse(error_body(f"internal error: {type(err).__name__}", "server_error"), status_code=500)

    @app.get("/health")
    async def health() -> JSONResponse:
        alive = server.engine.is_alive()
        body = {"status": "ok" if alive else "engine stopped", "model": settings.model_name}
        return JSONResponse({**body, "queue_depth": server.engine.queue_depth}, status_code=200 if alive else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(server.engine.queue_depth), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": settings.model_name, "object": "model", "owned_by": "llmexp"}]}

    async def respond(request: Request, body: SamplingFields, prompts: list[str], stops: list[str], chat: bool):
        choices = server.plan(body, prompts, stops)
        events = server.start(body, choices)
        pieces = server.pieces(choices, events, request.state.started)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        head = {"id": ident, "created": int(time.time()), "model": settings.model_name}
        if body.stream:
            return StreamingResponse(stream(request, head, body, choices, pieces, chat), media_type="text/event-stream")
        async for _ in pieces:
            pass
        failed = [c.error for c in choices if c.error]
        if failed:
            raise ApiError(500, f"generation failed: {failed[0]}", kind="server_error")
        if server.on_complete:
            await server.on_complete(ident, body, choices)
        record(request, 200)
        if chat:
            out = [{"index": c.index, "message": {"role": "assistant", "content": c.text.text}} for c in choices]
        else:
            out = [{"index": c.index, "text": c.text.text, "logprobs": None} for c in choices]
        for item, c in zip(out, choices, strict=True):
            item["finish_reason"] = c.finish_reason
        kind = "chat.completion" if chat else "text_completion"
        return {**head, "object": kind, "choices": out, "usage": _usage(choices)}

    async def stream(
        request: Request, head: dict, body: SamplingFields, choices: list[Choice], pieces, chat: bool
    ) -> AsyncIterator[bytes]:
        """SSE chunks; with stream_options.include_usage each says "usage": null and a last one, with no choices,
        carries the usage."""
        obj = "chat.completion.chunk" if chat else "text_completion"
        usage = body.include_usage
        head = {**head, "usage": None} if usage else head

        def chunk(index: int, text: str | None, finish: str | None, role: bool = False) -> bytes:
            if chat:
                delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
                choice = {"index": index, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
            return _sse({**head, "object": obj, "choices": [choice]})

        status = 200
        try:
            if chat:
                for c in choices:
                    yield chunk(c.index, None, None, role=True)
            async for choice, text, finish in pieces:
                if choice.error:
                    status = 500
                    yield _sse(error_body(f"generation failed: {choice.error}", "server_error"))
                    continue
                if text:
                    yield chunk(choice.index, text, None)
                if finish:
                    yield chunk(choice.index, None, finish)
            if usage:
                yield _sse({**head, "object": obj, "choices": [], "usage": _usage(choices)})
            if server.on_complete and status == 200:
                await server.on_complete(head["id"], body, choices)
            yield _sse("[DONE]")
        except ApiError as err:
            status = err.status
            yield _sse(error_body(err.message, err.kind))
        finally:
            record(request, status)

    @app.post("/v1/completions")
    async def completions(request: Request):
        request.state.started = time.perf_counter()
        body = validate(CompletionRequest, await read_json(request, settings.max_body_bytes))
        return await respond(request, body, body.prompt, [], chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        request.state.started = time.perf_counter()
        body = validate(ChatCompletionRequest, await read_json(request, settings.max_body_bytes))
        prompt = server.chat.render_prompt([m.model_dump() for m in body.messages])
        return await respond(request, body, [prompt], list(server.chat.stop), chat=True)

    return app
