"""Request bodies of the OpenAI-compatible endpoints, validated strictly: a wrong type is an error, not a guess.

Fields OpenAI clients send that change nothing here (user, presence_penalty 0, ...) are accepted and ignored;
features that are not implemented (logprobs, echo, best_of > 1) are refused with a message rather than ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_STOP_STRINGS = 4


class SamplingFields(BaseModel):
    """What both endpoints share. `max_tokens` has no upper bound here: the server checks it against its limit."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1)
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=10.0)
    n: int = Field(default=1, ge=1, le=8)
    stream: bool = False
    stop: str | list[str] | None = Field(default=None, validate_default=True)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    logprobs: None = Field(default=None, description="not supported")

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP_STRINGS or any(not s for s in stops):
            raise ValueError(f"stop takes at most {MAX_STOP_STRINGS} non-empty strings")
        return stops


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1)
    echo: Literal[False] = False
    best_of: Literal[1] = 1

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value: str | list[str]) -> list[str]:
        prompts = [value] if isinstance(value, str) else value
        if not prompts or len(prompts) > 16:
            raise ValueError("prompt must be a string or a list of 1 to 16 strings")
        return prompts


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)

    @model_validator(mode="after")
    def _ends_with_a_question(self) -> ChatCompletionRequest:
        if self.messages[-1].role == "assistant":
            raise ValueError("the last message must come from the user or the system, not the assistant")
        return self


def describe(err: ValidationError) -> tuple[str, str | None]:
    """(one clear message, the offending parameter) from pydantic's errors, as OpenAI's error body has them."""
    parts, param = [], None
    for item in err.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-after"))
        where = where.split(".str", 1)[0].split(".list[", 1)[0]
        param = param or where or None
        got = item.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r:.60})"
        parts.append(f"{where or 'body'}: {item['msg']}{shown}")
    return "; ".join(dict.fromkeys(parts)), param
