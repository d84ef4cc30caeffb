"""What differs between two runs or checkpoints: config, code version, packages, data and tokenizer identity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# Differences that say nothing about the model: where the run wrote and how it was typed.
IGNORED_PREFIXES = ("config.paths.", "config.hydra.", "provenance.command", "provenance.all_packages.")
IGNORED_LEAVES = frozenset({"dirpath", "save_dir", "cache_dir", "output_dir", "root_dir", "default_root_dir"})


def ignored(key: str) -> bool:
    return key.startswith(IGNORED_PREFIXES) or key.rsplit(".", 1)[-1] in IGNORED_LEAVES


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def load_record(path: str | Path) -> dict[str, Any]:
    """Config and provenance of a run folder (resolved config.yaml + provenance.json) or of a checkpoint file."""
    path = Path(path)
    if path.is_file():
        from llmexp.artifacts.checkpoint import read_checkpoint

        meta = read_checkpoint(path)["llmexp"]
        return flatten({"config": meta.get("config", {}), "provenance": meta.get("provenance", {})})
    config_file, provenance_file = path / "config.yaml", path / "provenance.json"
    if not config_file.exists() and not provenance_file.exists():
        raise FileNotFoundError(f"{path}: neither a checkpoint nor a run folder (config.yaml, provenance.json)")
    config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    provenance = json.loads(provenance_file.read_text()) if provenance_file.exists() else {}
    return flatten({"config": config, "provenance": provenance})


def diff_records(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every key whose values differ, ignoring paths and timestamps."""
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k) and not ignored(k)]


def format_diff(rows: list[tuple[str, Any, Any]], names: tuple[str, str]) -> str:
    if not rows:
        return f"no differences between {names[0]} and {names[1]} (config, code, packages, data, tokenizer)"
    width = max(len(k) for k, _, _ in rows)
    lines = [f"{'key'.ljust(width)}  {names[0]}  |  {names[1]}"]
    lines += [f"{k.ljust(width)}  {a!s}  |  {b!s}" for k, a, b in rows]
    return "\n".join(lines)
