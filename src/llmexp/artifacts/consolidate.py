"""Consolidate a sharded checkpoint (FSDP, fsdp2, DeepSpeed ZeRO) into one file that generate/eval/export load.

The weights are gathered in full (fp32 where DeepSpeed kept fp32 masters) into `state_dict` beside the llmexp
metadata; optimizer and loop state are left out: the result is for inference and export, not for resuming (resume
from the sharded folder itself, with the strategy that wrote it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from llmexp.artifacts.checkpoint import read_checkpoint, save_digested
from llmexp.artifacts.inference import model_from_checkpoint
from llmexp.artifacts.sharded import checkpoint_format, read_sharded_metadata
from llmexp.errors import CheckpointError

KEPT_KEYS = ("state_dict", "llmexp", "epoch", "global_step", "pytorch-lightning_version")


def default_output(path: Path) -> Path:
    """`checkpoints/last.ckpt` (a folder) -> `checkpoints/last.consolidated.ckpt`."""
    return path.with_name(f"{path.stem}.consolidated.ckpt")


def _gather_distcp(path: Path) -> dict[str, Any]:
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    return _load_distributed_checkpoint(path)


def _gather_deepspeed(path: Path) -> dict[str, Any]:
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    with tempfile.TemporaryDirectory() as tmp:
        return convert_zero_checkpoint_to_fp32_state_dict(path, Path(tmp) / "fp32.ckpt")


def consolidate(ckpt_path: str | Path, output_path: str | Path | None = None) -> Path:
    """Write one checkpoint file from a sharded folder; check that it rebuilds the model; return its path."""
    path = Path(ckpt_path)
    kind = checkpoint_format(path)
    if kind == "file":
        raise CheckpointError(f"ckpt_path={path}: already a single-file checkpoint; nothing to consolidate")
    output = Path(output_path) if output_path else default_output(path)
    if output.exists():
        raise CheckpointError(f"output_path={output}: exists; choose another path or remove it first")
    read_sharded_metadata(path)  # the safe-load policy: the folder is checked before torch or DeepSpeed unpickles it
    full = _gather_distcp(path) if kind == "distcp" else _gather_deepspeed(path)
    # Models are built in fp32 for inference; bf16-true training keeps bf16 weights.
    full["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in full["state_dict"].items()}
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    save_digested({k: full[k] for k in KEPT_KEYS if k in full}, partial)
    model_from_checkpoint(read_checkpoint(partial))  # strict load: every weight present with the right shape
    partial.replace(output)
    return output


def convert_checkpoint(cfg: Any) -> Path:
    """Entry point of `llmexp-convert` (conf/convert.yaml): consolidate and print where the file went."""
    output = consolidate(cfg.ckpt_path, cfg.get("output_path"))
    print(f"Consolidated checkpoint: {output}")
    print(f"Generate: llmexp-generate ckpt_path={output} prompt='<your text>'")
    return output
