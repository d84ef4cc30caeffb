"""The chat/prompt template shared by instruction SFT and the chat endpoint of the server.

A model answers well only in the format it was tuned on, so the template travels inside SFT checkpoints and the
server renders chat messages with the checkpoint's template. Role markers are plain text (any tokenizer encodes
them); the end of a reply is the tokenizer's EOS token, appended as an id, never as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    """How each role's turn is written; `{content}` is replaced by the message text."""

    system: str = "<|system|>\n{content}\n"
    user: str = "<|user|>\n{content}\n"
    assistant: str = "<|assistant|>\n{content}\n"
    # What starts the assistant's turn: the prompt ends here and the model writes the reply.
    generation_prompt: str = "<|assistant|>\n"
    # Text that, once generated, means the model has started a new turn: the server stops there.
    stop: tuple[str, ...] = ("<|user|>", "<|system|>")

    def to_dict(self) -> dict:
        return {**asdict(self), "stop": list(self.stop)}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> ChatTemplate:
        if not data:
            return cls()
        fields = dict(data)
        fields["stop"] = tuple(fields.get("stop", ()))
        return cls(**fields)

    def turn(self, role: str, content: str) -> str:
        if role not in ROLES:
            raise ValueError(f"message role {role!r} is not one of {list(ROLES)}")
        return getattr(self, role).format(content=content)

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The conversation so far, ending with the assistant's generation prompt."""
        return "".join(self.turn(m["role"], m["content"]) for m in messages) + self.generation_prompt

    def instruction_prompt(self, instruction: str, input_text: str = "", system: str | None = None) -> str:
        """An Alpaca-style row ({instruction, input, output}) as a one-turn conversation prompt."""
        user = f"{instruction}\n\n{input_text}" if input_text else instruction
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return self.render_prompt(messages)
