"""The on-disk format of a prepared dataset, and reading it back (`llmexp.prepare.shard_writer` writes it).

```
<prepared>/manifest.json        what was read, dropped, redacted, deduplicated; tokens per split; tokenizer hash; config
<prepared>/DATACARD.md          the same for people
<prepared>/tokenizer.json       the tokenizer every shard was encoded with
<prepared>/shards/<split>-NNNNN.bin      token ids, raw little-endian uint16 (vocab <= 65536) or uint32
<prepared>/shards/<split>-NNNNN.idx.npy  int64 offsets of each document's first token, then the shard's length
```
Every document ends with the tokenizer's EOS id; a document never spans two shards. Files are written under a
temporary name and renamed, so a file that exists is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmexp.errors import DataError
from llmexp.tokenizer import Tokenizer

MANIFEST = "manifest.json"
DATACARD = "DATACARD.md"
TOKENIZER = "tokenizer.json"
SHARDS_DIR = "shards"
FORMAT_VERSION = 1


def shard_stem(split: str, index: int) -> str:
    return f"{split}-{index:05d}"


@dataclass
class PreparedDataset:
    """A prepared folder opened for reading: its manifest, tokenizer and memory-mapped shards."""

    root: Path
    manifest: dict[str, Any]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    def tokenizer(self) -> Tokenizer:
        return Tokenizer.load(self.root / TOKENIZER)

    @property
    def tokenizer_sha256(self) -> str:
        return self.manifest["tokenizer"]["sha256"]

    def shard_paths(self, split: str) -> list[Path]:
        return [self.root / shard["file"] for shard in self.manifest["splits"][split]["shards"]]

    def shards(self, split: str) -> list[np.ndarray]:
        return [np.memmap(path, dtype=self.dtype, mode="r") for path in self.shard_paths(split)]

    def document_offsets(self, split: str, index: int) -> np.ndarray:
        path = self.shard_paths(split)[index]
        return np.load(path.with_name(path.name.removesuffix(".bin") + ".idx.npy"))


def load_prepared(path: str | Path) -> PreparedDataset:
    """Open a folder written by `llmexp-prepare`; a clear error when it is not one (or not finished)."""
    root = Path(path).expanduser()
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        reason = "no such folder" if not root.is_dir() else "no manifest.json (not prepared, or not finished)"
        raise DataError(f"data.path={path}: {reason}; run llmexp-prepare first")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"data.path={path}: format version {manifest.get('format_version')}, expected {FORMAT_VERSION}")
    return PreparedDataset(root=root, manifest=manifest)
