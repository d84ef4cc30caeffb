"""Settings a run takes from a saved thing rather than from its config: a resumed run keeps the model and tokenizer of
its checkpoint, a run from `init_from` the model shape (and the tokenizer) of its weights. A command-line override
of one of them would be ignored, so it is refused, naming what the checkpoint holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from llmexp.errors import ConfigError

ANY = object()  # a group taken whole from the saved thing: every override of it is ignored


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}")
    else:
        yield prefix, value


def _saved(kept: dict[str, Any], key: str) -> Any:
    node: Any = kept
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ANY if node is ANY else None
        node = node[part]
    return node


def refuse_ignored_overrides(
    cfg: DictConfig, overrides: list[str], kept: dict[str, Any], source: str, advice: str
) -> None:
    """ConfigError for the first override under a group of `kept` ({group: saved values, or ANY}) whose value
    differs from the saved one; `source` says where the saved values come from, `advice` what to do instead."""
    for override in sorted(overrides, key=lambda o: "." not in _key(o)):  # a key before the group it is in
        key = _key(override)
        if key.split(".")[0] not in kept:
            continue
        current = OmegaConf.select(cfg, key)
        current = OmegaConf.to_container(current, resolve=True) if isinstance(current, DictConfig) else current
        for leaf, value in _leaves(current, key):
            saved = _saved(kept, leaf)
            if saved is ANY or (saved is not None and saved != value):
                held = "" if saved is ANY else f" ({leaf}={saved})"
                raise ConfigError(f"{override}: ignored, {source}{held}; {advice}")
