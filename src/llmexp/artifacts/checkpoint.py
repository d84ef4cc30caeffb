"""Checkpoints that survive crashes: atomic writes, an integrity digest, safe loading, and finding where to resume.

Every file is written to a temporary name, fsynced and renamed over the target, so a crash mid-write leaves the
previous file intact. A digest of the whole content (every tensor's bytes and every other value: step, data
position, learning rates, generator states) is stored inside the checkpoint and checked before anything uses it: the
zip container does not check its own CRCs when torch reads it, so flipped bytes would otherwise load silently.
Reading never unpickles arbitrary objects (`llmexp.artifacts.safe_load`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import xxhash

from llmexp.artifacts.safe_load import load_file
from llmexp.artifacts.sharded import read_sharded_metadata
from llmexp.errors import CheckpointError

log = logging.getLogger(__name__)

INTEGRITY_KEY = "llmexp_integrity"
AUTO = "auto"
WHOLE = "xxh3_64/all"  # every value; checkpoints written before it carry "xxh3_64" (tensors only) and still verify
TENSORS_ONLY = "xxh3_64"


def _nodes(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every node of a nested checkpoint, containers before their items, in a deterministic order (sorted keys)."""
    yield prefix, obj
    if isinstance(obj, dict):
        for key in sorted(obj, key=str):
            if key != INTEGRITY_KEY:
                yield from _nodes(obj[key], f"{prefix}/{key}")
    elif isinstance(obj, list | tuple):
        for index, item in enumerate(obj):
            yield from _nodes(item, f"{prefix}/{index}")


def _describe(node: Any) -> str:
    """A value's type and exact content (repr round-trips floats); containers by their type, keys and length."""
    if isinstance(node, dict):
        return f"{type(node).__name__}{sorted(repr(k) for k in node if k != INTEGRITY_KEY)}"
    if isinstance(node, list | tuple):
        return f"{type(node).__name__}[{len(node)}]"
    return f"{type(node).__name__}:{node!r}"


def content_digest(checkpoint: dict[str, Any], algorithm: str = WHOLE) -> dict[str, Any]:
    """xxh3-64 over the names, dtypes, shapes and bytes of every tensor and, for `WHOLE`, every other value (fast
    enough to run on every save)."""
    digest = xxhash.xxh3_64()
    count = 0
    for name, node in _nodes(checkpoint):
        if isinstance(node, torch.Tensor):
            digest.update(f"{name}:{node.dtype}:{tuple(node.shape)};".encode())
            if node.layout == torch.strided and node.device.type != "meta":
                data = node.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                digest.update(data.numpy())  # the buffer itself, no copy
            count += 1
        elif algorithm == WHOLE:
            digest.update(f"{name}={_describe(node)};".encode())
    return {"algorithm": algorithm, "digest": digest.hexdigest(), "tensors": count}


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
    """Every llmexp checkpoint file is written this way: the digest of its content inside, then `atomic_save`."""
    atomic_save({**checkpoint, INTEGRITY_KEY: content_digest(checkpoint)}, path)


def read_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    require_metadata: bool = True,
    setting: str = "ckpt_path",
) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects, and check its digest; CheckpointError otherwise,
    naming the `setting` the user gave the path with. A sharded folder (fsdp, fsdp2, deepspeed) is checked whole and
    its metadata returned; the weights stay with the strategy."""
    path = Path(path)
    if path.is_dir():
        return read_sharded_metadata(path)
    if not path.is_file():
        raise CheckpointError(f"{setting}={path}: no such file")
    checkpoint = load_file(path, map_location, what=f"{setting}={path}")
    if not isinstance(checkpoint, dict) or (require_metadata and "llmexp" not in checkpoint):
        raise CheckpointError(f"{setting}={path}: not an llmexp checkpoint (no 'llmexp' metadata)")
    stored = checkpoint.pop(INTEGRITY_KEY, None)
    algorithm = stored.get("algorithm") if isinstance(stored, dict) else None
    known = algorithm in (WHOLE, TENSORS_ONLY)
    if stored is not None and (not known or content_digest(checkpoint, algorithm) != stored):
        what = "contents" if algorithm == WHOLE else "tensors"
        raise CheckpointError(
            f"{setting}={path}: corrupt, its {what} do not match the digest written with them ({stored.get('tensors')}"
            f" tensors, {algorithm} {stored.get('digest')}); use an earlier checkpoint"
        )
    return checkpoint


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """Checkpoint files of a run folder, newest first: checkpoints/**/*.ckpt and Lightning's SLURM hpc_ckpt_*.ckpt."""
    run_dir = Path(run_dir)
    files = [*run_dir.glob("checkpoints/**/*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    files = [f for f in files if f.is_file() and not f.name.startswith(".")]
    return sorted(files, key=lambda f: f.stat().st_mtime_ns, reverse=True)


def _newest_valid(run_dir: str | Path) -> tuple[Path | None, list[CheckpointError]]:
    """The newest checkpoint of `run_dir` that reads and verifies, and why each newer one does not."""
    skipped = []
    for candidate in checkpoint_candidates(run_dir):
        try:
            read_checkpoint(candidate)
        except CheckpointError as err:
            skipped.append(err)
            continue
        return candidate, skipped
    return None, skipped


def newest_valid_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of `run_dir` that reads and verifies; corrupt ones are reported and passed over."""
    found, skipped = _newest_valid(run_dir)
    for err in skipped:
        log.warning("skipping a checkpoint that cannot be resumed from: %s", err)
    return found


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | Path) -> str | None:
    """`ckpt_path=auto`: the newest valid checkpoint in the run folder (None to start fresh when it has none); else
    unchanged. A folder whose checkpoints are all damaged is an error: starting over would silently lose the run."""
    if ckpt_path != AUTO:
        return ckpt_path
    found, skipped = _newest_valid(run_dir)
    if found is None and skipped:
        raise CheckpointError(
            f"ckpt_path=auto: all {len(skipped)} checkpoints under {run_dir} are damaged, so there is nothing to "
            f"resume from (give one with ckpt_path=<file>, or move them away to start over); the newest: {skipped[0]}"
        )
    for err in skipped:
        log.warning("skipping a checkpoint that cannot be resumed from: %s", err)
    if found is None:
        log.info("ckpt_path=auto: no valid checkpoint under %s; starting from scratch", run_dir)
        return None
    log.info("ckpt_path=auto: resuming from %s", found)
    return str(found)
