"""`--help` for each command: what it does, examples, and only the config groups its primary config uses (read from
the YAML files, so it costs no torch import and no Hydra composition)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from llmexp.cli.entry_points import EntryPoint
from llmexp.config import config_dir


def _defaults(config: Path) -> list[tuple[str, str | None]]:
    """(group, default option) of a primary config's defaults list, Hydra's own groups left out."""
    entries = (yaml.safe_load(config.read_text()) or {}).get("defaults", [])
    found = []
    for entry in entries:
        if isinstance(entry, dict):
            ((group, option),) = entry.items()
            if not group.startswith(("hydra", "override")):
                found.append((group, option))
    return found


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def help_text(entry: EntryPoint) -> str:
    lines = [
        f"usage: {entry.program} [--help] [group=option ...] [key=value ...]"
        + (" [-m] [--preflight]" if entry.preflight else ""),
        "",
        *textwrap.wrap(entry.summary, 100),
        "",
        "examples:",
        *(f"  {example}" for example in entry.examples),
    ]
    groups = _defaults(config_dir() / f"{entry.config_name}.yaml")
    if groups:
        width = max(len(g) for g, _ in groups)
        lines += ["", "config groups (group=option; * marks the default):"]
        for group, default in groups:
            options = ", ".join(f"{o}*" if o == default else o for o in _options(group))
            lines.append(f"  {group:<{width}}  {options}")
    lines += [
        "",
        f"Every key can be set (key=value) or added (+key=value); {entry.program} --cfg job [overrides] prints the",
        f"composed config. Hydra's own flags: {entry.program} --hydra-help.",
    ]
    return "\n".join(lines)
