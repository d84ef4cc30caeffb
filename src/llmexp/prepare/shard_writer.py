"""Writing token shards of a prepared dataset (the format is described in `llmexp.data.shards`): every file goes under
a temporary name first and is renamed when complete, and a shard's index is written last, so it marks completion."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from llmexp.data.shards import SHARDS_DIR


def temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place (stages.remove_temporaries clears stale ones)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temporary(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = temporary(path)
    tmp = tmp.with_name(tmp.name + ".npy")  # np.save would add the suffix
    np.save(tmp, array)
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def write_shard(directory: Path, stem: str, pieces: list[np.ndarray], dtype: np.dtype) -> dict[str, Any]:
    """One shard from whole documents (each ending in EOS); the index is written last, so it marks completion."""
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = directory / f"{stem}.bin"
    tmp = temporary(data)
    with tmp.open("wb") as handle:
        for piece in pieces:
            handle.write(np.ascontiguousarray(piece, dtype=dtype).tobytes())
    os.replace(tmp, data)
    atomic_save_npy(directory / f"{stem}.idx.npy", offsets)
    return shard_record(directory, stem)


def shard_record(directory: Path, stem: str) -> dict[str, Any]:
    offsets = np.load(directory / f"{stem}.idx.npy")
    data = directory / f"{stem}.bin"
    return {
        "file": f"{SHARDS_DIR}/{data.name}",
        "tokens": int(offsets[-1]),
        "documents": len(offsets) - 1,
        "sha256": file_sha256(data),
    }


def shard_complete(directory: Path, stem: str, tokens: int, dtype: np.dtype) -> bool:
    data, index = directory / f"{stem}.bin", directory / f"{stem}.idx.npy"
    return index.exists() and data.exists() and data.stat().st_size == tokens * dtype.itemsize
