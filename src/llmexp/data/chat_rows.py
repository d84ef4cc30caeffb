"""What instruction (SFT) and preference (DPO) data share: rows split into training and validation, rendered with a
chat template, encoded once a tokenizer is known, and served by loaders that shard across ranks."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import lightning as L
from torch.utils.data import DataLoader

from llmexp.data.records import sharded_loader, train_and_val_rows
from llmexp.errors import DataError
from llmexp.tokenizer import ChatTemplate, Tokenizer


class ChatRowsDataModule(L.LightningDataModule):
    """Subclasses fill `self.splits` in `prepare()` and name the collate function that batches their examples."""

    collate_examples: Callable[..., dict]  # (examples, pad_id=...) -> batch

    def __init__(
        self,
        train_file: str,
        val_file: str | None,
        val_fraction: float,
        block_size: int,
        template: dict | None,
        max_train_rows: int | None,
        batch_size: int,
        val_batch_size: int | None,
        num_workers: int,
        seed: int,
    ):
        super().__init__()
        if block_size < 2 or batch_size < 1:
            raise DataError(f"data.block_size must be >= 2 and data.batch_size >= 1 (got {block_size}, {batch_size})")
        self.train_file, self.val_file, self.val_fraction = train_file, val_file, val_fraction
        self.block_size, self.max_train_rows = block_size, max_train_rows
        self.template = ChatTemplate.from_dict(template)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.splits: dict[str, list[dict]] = {}
        self._tokenizer: Tokenizer | None = None

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise RuntimeError("call prepare() before using the data module")
        return self._tokenizer

    def _rows(self) -> dict[str, list[dict]]:
        train, val = train_and_val_rows(self.train_file, self.val_file, self.val_fraction, self.seed)
        return {"train": train[: self.max_train_rows], "val": val}

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if not self.splits:
            raise RuntimeError("call prepare() before using the data module")
        batcher = partial(type(self).collate_examples, pad_id=self.tokenizer.eos_id)
        return sharded_loader(self, self.splits[split], batch_size, shuffle, batcher, self.seed, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)
