"""Checkpoints that survive crashes: atomic writes, an integrity digest, safe loading, and finding where to resume.

Every file is written to a temporary name, fsynced and renamed over the target, so a crash mid-write leaves the
previous file intact. A digest of every tensor is stored inside the checkpoint (the zip container does not check its
own CRCs when torch reads it, so flipped bytes would otherwise load silently). Reading never unpickles arbitrary
objects (`weights_only=True`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import xxhash

from llmexp.artifacts.sharded import read_sharded_metadata
from llmexp.errors import CheckpointError

log = logging.getLogger(__name__)

INTEGRITY_KEY = "llmexp_integrity"
AUTO = "auto"


def _tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a nested checkpoint, in a deterministic order (sorted keys)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            if key != INTEGRITY_KEY:
                yield from _tensors(obj[key], f"{prefix}/{key}")
    elif isinstance(obj, list | tuple):
        for index, item in enumerate(obj):
            yield from _tensors(item, f"{prefix}/{index}")


def tensor_digest(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """xxh3-64 over the names, dtypes, shapes and bytes of every tensor (fast enough to run on every save)."""
    digest = xxhash.xxh3_64()
    count = 0
    for name, tensor in _tensors(checkpoint):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        if tensor.layout == torch.strided and tensor.device.type != "meta":
            data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest.update(data.numpy())  # the buffer itself, no copy
        count += 1
    return {"algorithm": "xxh3_64", "digest": digest.hexdigest(), "tensors": count}


def atomic_save(checkpoint: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, rename over `path`, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def save_digested(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Every llmexp checkpoint file is written this way: the digest of its tensors inside, then `atomic_save`."""
    atomic_save({**checkpoint, INTEGRITY_KEY: tensor_digest(checkpoint)}, path)


def read_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", require_metadata: bool = True
) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects, and check its digest; CheckpointError otherwise."""
    path = Path(path)
    if path.is_dir():  # a sharded folder (fsdp, fsdp2, deepspeed): its metadata; the weights stay with the strategy
        return read_sharded_metadata(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding objects we refuse to unpickle
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CheckpointError(
            f"ckpt_path={path}: cannot be read safely, the file is truncated, corrupt or holds objects other than "
            f"tensors and plain data ({type(err).__name__}: {reason})"
        ) from err
    if not isinstance(checkpoint, dict) or (require_metadata and "llmexp" not in checkpoint):
        raise CheckpointError(f"ckpt_path={path}: not an llmexp checkpoint (no 'llmexp' metadata)")
    stored = checkpoint.pop(INTEGRITY_KEY, None)
    if stored is not None and tensor_digest(checkpoint) != stored:
        raise CheckpointError(
            f"ckpt_path={path}: corrupt, its tensors do not match the digest written with them "
            f"({stored['tensors']} tensors, {stored['algorithm']} {stored['digest']})"
        )
    return checkpoint


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """Checkpoint files of a run folder, newest first: checkpoints/**/*.ckpt and Lightning's SLURM hpc_ckpt_*.ckpt."""
    run_dir = Path(run_dir)
    files = [*run_dir.glob("checkpoints/**/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    files = [f for f in files if f.is_file() and not f.name.startswith(".")]
    return sorted(files, key=lambda f: f.stat().st_mtime_ns, reverse=True)


def newest_valid_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of `run_dir` that reads and verifies; corrupt ones are reported and passed over."""
    for candidate in checkpoint_candidates(run_dir):
        try:
            read_checkpoint(candidate)
        except CheckpointError as err:
            log.warning("skipping a checkpoint that cannot be resumed from: %s", err)
            continue
        return candidate
    return None


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | Path) -> str | None:
    """`ckpt_path=auto`: the newest valid checkpoint in the run folder (None to start fresh); else unchanged."""
    if ckpt_path != AUTO:
        return ckpt_path
    found = newest_valid_checkpoint(run_dir)
    if found is None:
        log.info("ckpt_path=auto: no valid checkpoint under %s; starting from scratch", run_dir)
        return None
    log.info("ckpt_path=auto: resuming from %s", found)
    return str(found)
