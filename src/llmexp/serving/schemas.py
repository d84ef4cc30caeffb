"""Request bodies of the OpenAI-compatible endpoints, validated strictly: a wrong type is an error, not a guess.

Fields OpenAI clients send that change nothing here (user, presence_penalty 0, ...) are accepted and ignored;
features that are not implemented (logprobs, echo, best_of > 1) are refused with a message rather than ignored.
Sampling settings have the ranges every llmexp entry point declares (`llmexp.config.ranges.SAMPLING`), so no
request can make decoding numerically unsafe; text must be valid Unicode (no lone surrogates).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmexp.config.ranges import SAMPLING, Range

MAX_STOP_STRINGS = 4


def _bounds(name: str) -> dict[str, float]:
    """pydantic's ge/gt/le/lt for one of the declared sampling ranges."""
    declared = SAMPLING[name]
    assert isinstance(declared, Range)
    bounds = {}
    if declared.low is not None:
        bounds["gt" if declared.low_open else "ge"] = declared.low
    if declared.high is not None:
        bounds["lt" if declared.high_open else "le"] = declared.high
    return bounds


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"holds {text[err.start : err.end]!r} at {err.start}, a lone surrogate, not Unicode") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    include_usage: bool = False


class SamplingFields(BaseModel):
    """What both endpoints share. `max_tokens` has no upper bound here: the server checks it against its limit."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, **_bounds("temperature"))
    top_p: float = Field(default=1.0, **_bounds("top_p"))
    top_k: int | None = Field(default=None, **_bounds("top_k"))
    repetition_penalty: float = Field(default=1.0, **_bounds("repetition_penalty"))
    n: int = Field(default=1, ge=1, le=8)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Text | list[Text] | None = Field(default=None, validate_default=True)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    logprobs: None = Field(default=None, description="not supported")

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > MAX_STOP_STRINGS or any(not s for s in stops):
            raise ValueError(f"stop takes at most {MAX_STOP_STRINGS} non-empty strings")
        return stops

    @model_validator(mode="after")
    def _stream_options_with_stream(self) -> Any:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self

    @property
    def include_usage(self) -> bool:
        """OpenAI's stream_options.include_usage: a last streamed chunk with the usage and no choices."""
        return self.stream_options is not None and self.stream_options.include_usage


class CompletionRequest(SamplingFields):
    prompt: Text | list[Text]
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

    role: Literal["system", "developer", "user", "assistant"]
    content: Text

    @field_validator("role")
    @classmethod
    def _developer_is_system(cls, role: str) -> str:
        """OpenAI's `developer` messages are what `system` messages were: the chat template's system part."""
        return "system" if role == "developer" else role


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ends_with_a_question(self) -> ChatCompletionRequest:
        if self.messages[-1].role == "assistant":
            raise ValueError("the last message must come from the user or the system, not the assistant")
        if self.max_completion_tokens is not None:  # OpenAI's newer name for the limit; it wins over max_tokens
            self.max_tokens = self.max_completion_tokens
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
