"""Recognise the checkpoint folders that sharded strategies write, and read their metadata without the weights.

FSDP (state_dict_type=sharded) and fsdp2 save a torch.distributed.checkpoint folder (`*.distcp` + `meta.pt`);
DeepSpeed saves `<ckpt>/checkpoint/*_model_states.pt` (+ a `latest` tag file). Resuming with the same strategy reads
these folders directly; generate/eval/export need one file, made by `llmexp-convert`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmexp.artifacts.safe_load import load_file, verify_dcp_folder, verify_deepspeed_folder
from llmexp.errors import CheckpointError

DCP_METADATA = "meta.pt"


def checkpoint_format(path: Path) -> str:
    """'file', 'distcp' (FSDP/fsdp2 sharded folder) or 'deepspeed'; CheckpointError for anything else."""
    if path.is_file():
        return "file"
    if path.is_dir() and (path / DCP_METADATA).is_file() and any(path.glob("*.distcp")):
        return "distcp"
    if path.is_dir() and any(path.glob("*/*model_states.pt")):
        return "deepspeed"
    if path.is_dir():
        raise CheckpointError(
            f"ckpt_path={path}: a folder, but not a sharded checkpoint (no meta.pt + *.distcp, no DeepSpeed "
            "*model_states.pt)"
        )
    raise CheckpointError(f"ckpt_path={path}: no such file or folder")


def _deepspeed_client_state_file(path: Path) -> Path:
    files = sorted(path.glob("*/*model_states.pt"))
    # ZeRO-1/2 write mp_rank_00_model_states.pt; ZeRO-3 one zero_pp_rank_<r>_mp_rank_00_model_states.pt per rank.
    return next((f for f in files if f.name.startswith("mp_rank_00")), None) or next(
        f for f in files if f.name.startswith("zero_pp_rank_0_")
    )


def verify_folder(path: Path) -> str:
    """Check a sharded folder by the safe-load policy before torch or DeepSpeed unpickles it; return its format."""
    kind = checkpoint_format(path)
    if kind == "distcp":
        verify_dcp_folder(path)
    elif kind == "deepspeed":
        verify_deepspeed_folder(path)
    return kind


def read_sharded_metadata(path: Path) -> dict[str, Any]:
    """Everything a sharded checkpoint stores besides weights and optimizer state (llmexp metadata, loops, step),
    after checking the whole folder (`verify_folder`): what resumes from it is known to hold only plain data."""
    kind = verify_folder(path)
    source = path / DCP_METADATA if kind == "distcp" else _deepspeed_client_state_file(path)
    state = load_file(source, what=f"ckpt_path={path}: {source.name}")
    if not isinstance(state, dict) or "llmexp" not in state:
        raise CheckpointError(f"ckpt_path={path}: not an llmexp checkpoint (no 'llmexp' metadata in {source.name})")
    return {k: v for k, v in state.items() if k not in ("module", "optimizer", "state_dict")}
