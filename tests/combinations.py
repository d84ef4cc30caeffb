"""The combinations the configs allow, generated from the registries (FamilySpec, conf/task, conf/experiment,
conf/model), and the data each recipe needs, written into a folder. A new family, objective or recipe joins every
test that uses these lists without an edit here."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import yaml
from hydra.utils import get_class

from llmexp.config import config_dir
from llmexp.models.spec import FAMILIES, family_of

CONF = config_dir()


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@cache
def objectives() -> dict[str, str]:
    """conf/task option -> the objective its Task class declares."""
    return {p.stem: get_class(_yaml(p)["_target_"]).objective for p in sorted((CONF / "task").glob("*.yaml"))}


@cache
def recipe(objective: str) -> str:
    """The experiment that sets up an objective (its data, collator and tokenizer): the first that overrides the
    task group to it."""
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        for entry in _yaml(path).get("defaults", []):
            if isinstance(entry, dict) and entry.get("override /task") == objective:
                return path.stem
    raise LookupError(f"no conf/experiment/*.yaml overrides /task to {objective}: add a recipe for it")


@cache
def tiny_model(family: str) -> str:
    """The smallest model option of a family: the first conf/model/*_tiny.yaml of that family."""
    for path in sorted((CONF / "model").glob("*_tiny.yaml")):
        if family_of(get_class(_yaml(path)["_target_"])).name == family:
            return path.stem
    raise LookupError(f"model family {family!r} has no conf/model/*_tiny.yaml for the combination tests")


def supported() -> list[tuple[str, str]]:
    return [(family, objective) for family, spec in FAMILIES.items() for objective in spec.objectives]


def unsupported() -> list[tuple[str, str]]:
    return [
        (f, o) for f, spec in FAMILIES.items() for o in sorted(set(objectives().values())) if o not in spec.objectives
    ]


def write_data(folder: Path) -> dict[str, Path]:
    """Small local files for the recipes whose data must be given: instructions, preference pairs, labelled texts,
    plain text (keyed by the `batch_kind` of the data module that reads them)."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(a, b) for a in range(12) for b in range(10)]
    sft = [{"instruction": f"Add {a} and {b}.", "input": "", "output": f"The sum is {a + b}."} for a, b in pairs]
    (folder / "sft.json").write_text(json.dumps(sft))
    preferred = [{"prompt": f"Add {a} and {b}.", "chosen": f"The sum is {a + b}.", "rejected": "No."} for a, b in pairs]
    (folder / "pairs.json").write_text(json.dumps(preferred))
    words = ["good", "fine", "great", "bad", "poor", "awful"]
    rows = [
        {"text": f"this film was {w} and {v}", "label": "pos" if i < 3 else "neg"}
        for i, w in enumerate(words)
        for v in words
    ]
    (folder / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows * 2))
    (folder / "domain.txt").write_text(
        " ".join(f"The value {i} is stored in slot {i % 7} of the table." for i in range(600))
    )
    return {
        "instructions": folder / "sft.json",
        "preferences": folder / "pairs.json",
        "labelled_texts": folder / "labels.jsonl",
        "text": folder / "domain.txt",
    }


def data_overrides(objective: str, files: dict[str, Path]) -> list[str]:
    """What the recipe of `objective` leaves required (`???`), filled with the local files."""
    data = _yaml(CONF / "data" / f"{_recipe_data(objective)}.yaml")
    out = []
    if data.get("train_file") == "???":  # a quarter held out: a validation batch for each of two ranks
        out += [f"data.train_file={files[get_class(data['_target_']).batch_kind]}", "data.val_fraction=0.25"]
    if isinstance(data.get("corpus"), dict) and data["corpus"].get("paths") == "???":
        # A few hundred chunks of one file, a fifth held out: enough blocks for a validation batch.
        out += [f"data.corpus.paths=[{files['text']}]", "data.corpus.chunk_chars=400", "data.corpus.val_fraction=0.2"]
    return out


def _recipe_data(objective: str) -> str:
    for entry in _yaml(CONF / "experiment" / f"{recipe(objective)}.yaml").get("defaults", []):
        if isinstance(entry, dict) and "override /data" in entry:
            return entry["override /data"]
    return "pydocs"
