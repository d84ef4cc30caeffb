"""The one safe-load policy: every saved thing llmexp reads is read without running code that the file names.

- a single file: `torch.load(weights_only=True)` (tensors and plain data only);
- a torch.distributed.checkpoint folder (FSDP, fsdp2): `.metadata` is unpickled by a restricted unpickler that builds
  only torch's own checkpoint-metadata classes, and every non-tensor item of the `.distcp` files must load with
  `weights_only=True`;
- a DeepSpeed folder: every `*.pt` file must load with `weights_only=True`, allowing by name only the four DeepSpeed
  classes its ZeRO checkpoints hold (stand-ins are built, so no DeepSpeed code runs while checking);
- transformers directories: safetensors weights only (see `llmexp.artifacts.hf_dir`); tokenizers: JSON only.

torch.distributed.checkpoint and DeepSpeed unpickle their folders themselves (`pickle.load`,
`torch.load(weights_only=False)`); `verify_folder` runs first, so what they unpickle has been checked to be
plain data. A folder swapped for another between the check and the load is not covered.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from llmexp.errors import CheckpointError

DCP_METADATA_FILE = ".metadata"
DEEPSPEED_CLASSES = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)
_DCP_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata",
        "MetadataIndex",
        "StorageMeta",
        "TensorProperties",
        "TensorStorageMetadata",
        "ChunkStorageMetadata",
        "BytesStorageMetadata",
        "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def load_file(path: str | Path | io.BytesIO, map_location: Any = "cpu", what: str = "") -> Any:
    """`torch.load` of tensors and plain data only; CheckpointError (one line) for anything else or a damaged file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding objects we refuse to unpickle
        raise CheckpointError(
            f"{what or path}: cannot be read safely, the file is truncated, corrupt or holds objects other than "
            f"tensors and plain data ({_reason(err)})"
        ) from err


class _DCPMetadataUnpickler(pickle.Unpickler):
    """Builds torch's checkpoint-metadata classes, torch dtypes and plain data; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = name in _DCP_CLASSES.get(module, ()) or (
            module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)
        )
        if not allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_dcp_metadata(folder: Path) -> Any:
    """The `.metadata` of a torch.distributed.checkpoint folder, through the restricted unpickler."""
    path = folder / DCP_METADATA_FILE
    try:
        with open(path, "rb") as handle:
            return _DCPMetadataUnpickler(handle).load()
    except Exception as err:
        where = f"ckpt_path={folder}: {DCP_METADATA_FILE}"
        raise CheckpointError(f"{where} cannot be read safely ({_reason(err)})") from err


def verify_dcp_folder(folder: Path) -> None:
    """Every non-tensor item of the folder loads with weights_only=True (torch's own reader unpickles them fully)."""
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    metadata = read_dcp_metadata(folder)
    for index, info in metadata.storage_data.items():
        if not isinstance(metadata.state_dict_metadata.get(index.fqn), BytesStorageMetadata):
            continue
        where = f"ckpt_path={folder}: item {index.fqn} of {info.relative_path}"
        if info.transform_descriptors:
            raise CheckpointError(f"{where}: stored with transforms {info.transform_descriptors}, not read by llmexp")
        source = (folder / info.relative_path).resolve()
        if source.parent != folder.resolve():
            raise CheckpointError(f"{where}: points outside the checkpoint folder")
        with open(source, "rb") as handle:
            handle.seek(info.offset)
            load_file(io.BytesIO(handle.read(info.length)), what=where)


class _Standin:
    """Takes the place of an allowed DeepSpeed class while checking a file, so no DeepSpeed code runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def verify_deepspeed_folder(folder: Path) -> None:
    """Every `*.pt` of a DeepSpeed checkpoint loads with weights_only=True and the DeepSpeed allow-list."""
    with torch.serialization.safe_globals([(_Standin, name) for name in DEEPSPEED_CLASSES]):
        for path in sorted(folder.glob("*/*.pt")):
            load_file(path, what=f"ckpt_path={folder}: {path.relative_to(folder)}")
