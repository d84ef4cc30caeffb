"""Keep secrets out of everything a run writes: configs, logged hyperparameters, checkpoints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|passw(or)?d|credential|auth)", re.IGNORECASE)
REDACTED = "***"
# Keys that match the pattern but hold no secret: token counts and limits, tokenizer settings, special tokens and their
# ids (`pad_token_id` was masked in every saved config, so a resumed run saw its own model change).
_NOT_SECRET = re.compile(r"tokens|tokeni[sz]|_token_ids?$|^(pad|mask|eos|bos|unk|cls|sep)_token$", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    return not _NOT_SECRET.search(key) and bool(SECRET_KEY.search(key))


def redact(data: Any) -> Any:
    """A copy of nested dicts/lists with the values of secret-looking keys replaced by ***."""
    if isinstance(data, dict):
        return {k: REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return type(data)(redact(v) for v in data)
    return data


def secret_overrides(args: list[str]) -> list[str]:
    """Command-line overrides whose key looks like a secret (`+logger.wandb.api_key=...`)."""
    return [a for a in args if "=" in a and is_secret_key(a.split("=", 1)[0].lstrip("+~").rsplit(".", 1)[-1])]


def redact_text(text: str, args: list[str]) -> str:
    """Replace the values of secret overrides wherever they appear in a text file."""
    for arg in secret_overrides(args):
        value = arg.split("=", 1)[1]
        if value:
            text = text.replace(value, REDACTED)
    return text


def scrub_hydra_files(run_dir: Path, args: list[str]) -> None:
    """Hydra saves the overrides and configs verbatim; rewrite them without the secrets given on the command line."""
    if not secret_overrides(args):
        return
    for path in (run_dir / ".hydra").glob("*.yaml"):
        path.write_text(redact_text(path.read_text(), args))
