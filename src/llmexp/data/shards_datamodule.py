"""Train on prepared shards: fixed-length windows from memory-mapped token files, one or several datasets mixed.

The shuffling, the split between ranks and the resumable position are CausalLMDataModule's (ResumableSampler, with
the epoch and batches consumed saved in the checkpoint); only where the windows come from differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from llmexp.data.datamodule import CausalLMDataModule
from llmexp.data.shards import MANIFEST, PreparedDataset, load_prepared
from llmexp.errors import ConfigError, DataError
from llmexp.tokenizer import Tokenizer, TokenizerSpec

log = logging.getLogger(__name__)


class ShardWindows(Dataset):
    """Windows of `block_size + 1` tokens at stride `block_size` inside each shard of one split (documents run across
    window edges, separated by EOS). Shards are opened lazily, so the dataset pickles cheaply into loader workers."""

    def __init__(self, paths: list[Path], dtype: np.dtype, block_size: int):
        self.paths, self.dtype, self.block_size = [str(p) for p in paths], np.dtype(dtype), block_size
        sizes = [Path(p).stat().st_size // self.dtype.itemsize for p in self.paths]
        counts = [max(0, (n - 1) // block_size) for n in sizes]
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._maps: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def window(self, index: int) -> np.ndarray:
        if self._maps is None:
            self._maps = [np.memmap(p, dtype=self.dtype, mode="r") for p in self.paths]
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        start = (index - int(self.starts[shard])) * self.block_size
        return self._maps[shard][start : start + self.block_size + 1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        window = torch.from_numpy(self.window(index).astype(np.int64))
        return {"input_ids": window[:-1], "labels": window[1:]}


class MixedWindows(Dataset):
    """Windows of several datasets in proportion to `weights`: a fixed list of (dataset, window) drawn from the seed.

    A dataset asked for more windows than it has is cycled through (each pass in a new seeded order); one asked for
    fewer gives a seeded subset. The list is the same on every rank and every run, so the sampler can index it.
    """

    def __init__(self, parts: list[ShardWindows], weights: list[float], seed: int, length: int | None = None):
        total = length or sum(len(p) for p in parts)
        share = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        counts = np.floor(share * total).astype(np.int64)
        remainder = share * total - counts
        counts[np.argsort(-remainder, kind="stable")[: total - int(counts.sum())]] += 1  # largest remainders
        rng = np.random.default_rng(seed)
        items = []
        for d, (part, count) in enumerate(zip(parts, counts, strict=True)):
            passes = -(-int(count) // len(part))
            order = np.concatenate([rng.permutation(len(part)) for _ in range(passes)])[:count]
            items.append(np.stack([np.full(count, d), order], axis=1))
        self.parts, self.items = parts, np.concatenate(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        dataset, window = self.items[index]
        return self.parts[int(dataset)][int(window)]


class ShardsDataModule(CausalLMDataModule):
    """Prepared shards (one folder, or several with mixture weights) -> shuffled fixed-length windows."""

    def __init__(
        self,
        path: str | list[str],
        weights: list[float] | None = None,
        samples_per_epoch: int | None = None,
        block_size: int = 256,
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__(
            corpus=None,  # type: ignore[arg-type]  # the corpus was consumed by llmexp-prepare
            block_size=block_size,
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self.paths = [path] if isinstance(path, str) else [str(p) for p in path]
        if not self.paths:
            raise ConfigError("data.path is empty; give a prepared folder (or a list of them)")
        self.weights = [float(w) for w in weights] if weights is not None else [1.0] * len(self.paths)
        if len(self.weights) != len(self.paths) or any(w <= 0 for w in self.weights):
            raise ConfigError(
                f"data.weights must be {len(self.paths)} positive numbers (one per data.path), got {weights}"
            )
        self.samples_per_epoch = samples_per_epoch
        self.datasets: list[PreparedDataset] = []
        self._tokenizer: Tokenizer | None = None
        self._splits: dict[str, Dataset] = {}

    def prepare(self, spec: TokenizerSpec, tokenizer: Tokenizer | None = None) -> Tokenizer:
        """Open the prepared folders; their tokenizer (all must share one) is the run's. `spec` is not used: the
        shards were encoded when they were prepared. A tokenizer from a checkpoint must be that same one."""
        del spec
        self.datasets = [load_prepared(p) for p in self.paths]
        hashes = {d.tokenizer_sha256 for d in self.datasets}
        if len(hashes) > 1:
            raise DataError(f"data.path: the prepared datasets {self.paths} were encoded with different tokenizers")
        own = self.datasets[0].tokenizer()
        if tokenizer is not None and tokenizer.sha256() != own.sha256():
            raise DataError(
                f"data.path={self.paths[0]}: its tokenizer differs from the checkpoint's; prepare the data with "
                "tokenizer=pretrained tokenizer.path=<the run's tokenizer.json>"
            )
        self._tokenizer, self._splits = own, {}
        log.info("training on %s (weights %s)", self.paths, self.weights)
        return own

    def fingerprint(self) -> str:
        """Identity of the training data: the manifests (which hash every shard) and the mixture weights."""
        digest = hashlib.sha256(json.dumps(self.weights).encode())
        for prepared in self.datasets:
            digest.update((Path(prepared.root) / MANIFEST).read_bytes())
        return digest.hexdigest()[:16]

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise RuntimeError("call prepare() before using the data module")
        return self._tokenizer

    def _windows(self, split: str) -> list[ShardWindows]:
        parts = []
        for prepared in self.datasets:
            part = ShardWindows(prepared.shard_paths(split), prepared.dtype, self.block_size)
            if len(part) == 0:
                raise DataError(
                    f"data.path={prepared.root}: the {split} split has no window of {self.block_size + 1} tokens "
                    f"({prepared.manifest['splits'][split]['tokens']} tokens); lower data.block_size or prepare "
                    "with a larger val_fraction"
                )
            parts.append(part)
        return parts

    def dataset(self, split: str) -> Dataset:
        if not self.datasets:
            raise RuntimeError("call prepare() before using the data module")
        if split not in self._splits:
            parts = self._windows(split)
            if split == "train" and (len(parts) > 1 or self.samples_per_epoch):
                self._splits[split] = MixedWindows(parts, self.weights, self.seed, self.samples_per_epoch)
            elif len(parts) == 1:
                self._splits[split] = parts[0]
            else:  # validation over several datasets: all their windows, unweighted
                self._splits[split] = torch.utils.data.ConcatDataset(parts)
        return self._splits[split]
