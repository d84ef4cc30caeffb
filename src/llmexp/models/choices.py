"""Checks shared by the model config dataclasses: a field typed `Literal[...]` only takes one of its values."""

from __future__ import annotations

import typing
from dataclasses import fields

from llmexp.errors import ConfigError


def check_choices(config: object) -> None:
    """ConfigError naming the field, the value and the choices, for the first `Literal` field set to anything else."""
    hints = typing.get_type_hints(type(config))
    for field in fields(config):
        hint = hints.get(field.name)
        if typing.get_origin(hint) is typing.Literal:
            value, allowed = getattr(config, field.name), typing.get_args(hint)
            if value not in allowed:
                raise ConfigError(f"model.{field.name}={value!r}: not one of {', '.join(map(str, allowed))}")
