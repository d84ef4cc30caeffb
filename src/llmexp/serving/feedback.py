"""`POST /v1/feedback`: a person's rating of one answer, or which of two answers to the same prompt is better.

Every completion the server answers is kept in the feedback store under the id of its response, so feedback names
an answer by that id (and `choice`, its index) and the store can later turn it into training data
(`llmexp-feedback`). Feedback is acknowledged only once it is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmexp.serving.app import ApiError, Choice, Server, read_json, validate
from llmexp.serving.feedback_store import Answer, Completion, Feedback, FeedbackStore
from llmexp.serving.schemas import ChatCompletionRequest, SamplingFields

log = logging.getLogger(__name__)
MAX_ID_CHARS = 64
MAX_CHOICE = 127  # n is at most 8 and a completion has at most 16 prompts
SAMPLING_KEYS = {"max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "n", "seed"}


class FeedbackRequest(BaseModel):
    """Either `rating`, or `other_id` with `preferred`; `text` is a free comment. Unknown keys are refused (a typo
    must not turn feedback into nothing)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    completion_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    choice: int = Field(default=0, ge=0, le=MAX_CHOICE)
    rating: int | None = Field(default=None, ge=1, le=5)
    other_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    other_choice: int = Field(default=0, ge=0, le=MAX_CHOICE)
    preferred: Literal["completion", "other", "tie"] | None = None
    text: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _a_rating_or_a_preference(self) -> FeedbackRequest:
        comparing = self.other_id is not None or self.preferred is not None
        if (self.rating is not None) == comparing:
            raise ValueError("give either rating (1-5) or other_id with preferred (completion, other or tie)")
        if comparing and (self.other_id is None or self.preferred is None):
            raise ValueError("a preference needs both other_id and preferred (completion, other or tie)")
        if comparing and (self.completion_id, self.choice) == (self.other_id, self.other_choice):
            raise ValueError("a preference compares two different answers: other_id/other_choice name the same one")
        return self


def answers_of(body: SamplingFields, choices: list[Choice]) -> tuple[str, list[Answer]]:
    """("chat" or "text", each choice's prompt and text) of an answered request."""
    if isinstance(body, ChatCompletionRequest):
        messages = [m.model_dump() for m in body.messages]
        return "chat", [Answer(messages, c.text.text) for c in choices]
    return "text", [Answer(body.prompt[c.index // body.n], c.text.text) for c in choices]


CompletionHook = Callable[[str, SamplingFields, list[Choice]], Awaitable[None]]


def completion_recorder(store: FeedbackStore, model: str) -> CompletionHook:
    """What the server calls with each answered completion: keep it, so that feedback can name it by id. A store
    that fails does not fail the answer (it is logged; feedback on that id then gets 404)."""

    async def record(ident: str, body: SamplingFields, choices: list[Choice]) -> None:
        kind, answers = answers_of(body, choices)
        completion = Completion(ident, model, kind, answers, body.model_dump(include=SAMPLING_KEYS))
        try:
            await asyncio.to_thread(store.add_completion, completion)
        except sqlite3.Error:
            log.exception("completion %s was answered but not stored; feedback on it will get 404", ident)

    return record


async def answered(store: FeedbackStore, ident: str, choice: int, names: tuple[str, str]) -> Completion:
    """The stored completion `ident`, checked to have a choice `choice` (`names`: the two request fields)."""
    completion = await asyncio.to_thread(store.completion, ident)
    if completion is None:
        raise ApiError(404, f"{names[0]}={ident!r}: no completion with this id was answered here", names[0])
    if choice >= len(completion.answers):
        count = len(completion.answers)
        raise ApiError(400, f"{names[1]}={choice}: completion {ident} has {count} choice(s)", names[1])
    return completion


async def store_feedback(store: FeedbackStore, body: FeedbackRequest) -> dict:
    first = await answered(store, body.completion_id, body.choice, ("completion_id", "choice"))
    models = [first.model]
    if body.other_id is not None:
        second = await answered(store, body.other_id, body.other_choice, ("other_id", "other_choice"))
        if first.answers[body.choice].prompt != second.answers[body.other_choice].prompt:
            raise ApiError(400, "the two answers reply to different prompts; a preference compares answers to one")
        models.append(second.model)
    feedback = Feedback(**body.model_dump())
    try:
        seq = await asyncio.to_thread(store.add_feedback, feedback)
    except sqlite3.Error as err:
        raise ApiError(503, f"the feedback was not stored ({err}); send it again", kind="server_error") from None
    return {"id": f"feedback-{seq}", "object": "feedback", "completion_id": body.completion_id, "models": models}


def also_run(app: FastAPI, start: Callable[[], None], stop: Callable[[], None]) -> None:
    """Run `start` before the app's own startup and `stop` after its shutdown."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator:
        start()
        try:
            async with inner(application) as state:
                yield state
        finally:
            stop()

    app.router.lifespan_context = lifespan


def add_feedback(app: FastAPI, server: Server, store: FeedbackStore) -> None:
    """Keep every completion `server` answers in `store` and accept feedback on them at POST /v1/feedback."""
    server.on_complete = completion_recorder(store, server.settings.model_name)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict:
        request.state.started = time.perf_counter()
        body = validate(FeedbackRequest, await read_json(request, server.settings.max_body_bytes))
        answer = await store_feedback(store, body)
        server.metrics.observe_request(request.url.path, 200, time.perf_counter() - request.state.started)
        return answer
