"""Rows of a labelled or instruction dataset from a local file (jsonl, json, csv, tsv, parquet) or `datasets`."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from llmexp.data.sampler import ResumableLoader, ResumableSampler, trainer_position
from llmexp.errors import DataError

FILE_KINDS = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


def _read_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data["data"] if isinstance(data, dict) and "data" in data else data
    if suffix in (".csv", ".tsv"):
        csv.field_size_limit(sys.maxsize)
        with path.open(encoding="utf-8", newline="") as handle:
            # TSV files such as GLUE's hold quote characters inside text: read them literally.
            kwargs = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
            return list(csv.DictReader(handle, **kwargs))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(FILE_KINDS)}")


def read_records(source: str, split: str = "train", key: str = "data.train_file") -> list[dict]:
    """Every row of `source`: a local file, or else the name of a `datasets` dataset (its `split`)."""
    path = Path(source).expanduser()
    if path.is_file():
        try:
            rows = _read_file(path)
        except (ValueError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"{key}={source}: cannot be parsed ({type(err).__name__}: {err})") from err
    elif path.suffix.lower() in FILE_KINDS or path.parent != Path("."):
        raise DataError(f"{key}={source}: no such file")
    else:
        import datasets

        try:
            rows = list(datasets.load_dataset(source, split=split))
        except Exception as err:  # unknown name, no network, missing split: say which
            raise DataError(f"{key}={source}: not a file, and `datasets` cannot load it ({err})") from err
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise DataError(f"{key}={source}: expected a non-empty list of records (objects/rows)")
    return rows


def column(rows: list[dict], field: str, key: str) -> list:
    missing = next((i for i, row in enumerate(rows) if field not in row), None)
    if missing is not None:
        raise DataError(f"{key}={field!r}: row {missing} has no such field; it has {sorted(rows[missing])}")
    return [row[field] for row in rows]


def sharded_loader(
    datamodule: L.LightningDataModule, items: list, batch_size: int, shuffle: bool, collate_fn, seed: int, workers: int
) -> DataLoader:
    """A loader over this rank's share of `items`, shuffled per epoch from the seed (the run sets
    `use_distributed_sampler: false`, so each data module shards its own data); resumable mid-epoch when shuffled."""
    trainer = datamodule.trainer
    rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
    if len(items) < world:
        split = "training" if shuffle else "validation"
        raise DataError(
            f"the {split} split has {len(items)} rows (after packing), fewer than the {world} ranks that share it; "
            "give more data or raise data.val_fraction"
        )
    sampler = ResumableSampler(len(items), seed, shuffle=shuffle, rank=rank, world_size=world)
    settings = {"batch_size": batch_size, "sampler": sampler, "collate_fn": collate_fn, "num_workers": workers}
    if shuffle:  # the training loader: Lightning saves and restores its position mid-epoch
        return ResumableLoader(items, position=trainer_position(datamodule), **settings)
    return DataLoader(items, **settings)


def train_and_val_rows(
    train_file: str, val_file: str | None, val_fraction: float, seed: int
) -> tuple[list[dict], list[dict]]:
    """Shuffled training rows and validation rows: `val_file`'s, or a `val_fraction` held out of the training rows
    (DataError when that leaves nothing to train on, rather than a confusing empty split later)."""
    train = read_records(train_file, "train", "data.train_file")
    random.Random(seed).shuffle(train)
    if val_file:
        return train, read_records(val_file, "validation", "data.val_file")
    cut = max(1, int(len(train) * val_fraction))
    if len(train) <= cut:
        raise DataError(
            f"data.train_file: {len(train)} row(s) leave none to train on after holding out {cut} for validation "
            f"(data.val_fraction={val_fraction}); give more rows or data.val_file"
        )
    return train[cut:], train[:cut]
