"""Text classification data: (text, label) rows -> right-padded token ids, lengths and label ids."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader

from llmexp.data.records import column, sharded_loader, train_and_val_rows
from llmexp.errors import DataError
from llmexp.tokenizer import Tokenizer, TokenizerSpec


def collate_right_padded(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right padding keeps every real token at its own position, so a causal model needs no attention mask."""
    width = max(len(item["ids"]) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item["ids"])] = torch.tensor(item["ids"], dtype=torch.long)
    lengths = torch.tensor([len(item["ids"]) for item in items], dtype=torch.long)
    labels = torch.tensor([item["label"] for item in items], dtype=torch.long)
    return {"input_ids": ids, "lengths": lengths, "labels": labels}


class ClassificationDataModule(L.LightningDataModule):
    """Labelled texts from jsonl/json/csv/tsv/parquet files or a `datasets` name.

    Label names are the sorted distinct labels of the training rows; val rows come from `val_file` or, without one,
    a seeded `val_fraction` of the training rows.
    """

    batch_kind = "labelled_texts"

    def __init__(
        self,
        train_file: str,
        val_file: str | None = None,
        text_field: str = "text",
        label_field: str = "label",
        val_fraction: float = 0.1,
        block_size: int = 128,
        max_train_rows: int | None = None,
        max_val_rows: int | None = None,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if block_size < 1 or batch_size < 1:
            raise DataError(f"data.block_size and data.batch_size must be >= 1 (got {block_size}, {batch_size})")
        self.train_file, self.val_file = train_file, val_file
        self.text_field, self.label_field = text_field, label_field
        self.val_fraction, self.block_size = val_fraction, block_size
        self.max_train_rows, self.max_val_rows = max_train_rows, max_val_rows
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.label_names: list[str] = []
        self.splits: dict[str, list[dict]] = {}
        self._tokenizer: Tokenizer | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def _rows(self) -> tuple[list[dict], list[dict]]:
        train, val = train_and_val_rows(self.train_file, self.val_file, self.val_fraction, self.seed)
        return train[: self.max_train_rows], val[: self.max_val_rows]

    def prepare(self, spec: TokenizerSpec, tokenizer: Tokenizer | None = None) -> Tokenizer:
        """Read and encode the rows; train a tokenizer on the training texts only when none is given."""
        train, val = self._rows()
        texts = {name: [str(t) for t in column(rows, self.text_field, "data.text_field")] for name, rows in
                 (("train", train), ("val", val))}  # fmt: skip
        labels = {name: [str(v) for v in column(rows, self.label_field, "data.label_field")] for name, rows in
                  (("train", train), ("val", val))}  # fmt: skip
        self.label_names = sorted(set(labels["train"]))
        if len(self.label_names) < 2:
            raise DataError(f"data.label_field={self.label_field!r}: the training rows hold fewer than 2 labels")
        unknown = sorted(set(labels["val"]) - set(self.label_names))
        if unknown:
            raise DataError(f"data.val_file: labels {unknown[:5]} never occur in the training rows")
        self._tokenizer = tokenizer or spec.train(texts["train"])
        index = {name: i for i, name in enumerate(self.label_names)}
        for split in ("train", "val"):
            encoded = self._tokenizer.encode_batch(texts[split])
            self.splits[split] = [
                {"ids": (ids or [self._tokenizer.eos_id])[: self.block_size], "label": index[label]}
                for ids, label in zip(encoded, labels[split], strict=True)
            ]
        return self._tokenizer

    def majority_accuracy(self, split: str = "val") -> float:
        """Accuracy of always answering the most frequent training label: the baseline a classifier must beat."""
        counts = [0] * self.num_labels
        for item in self.splits["train"]:
            counts[item["label"]] += 1
        majority = counts.index(max(counts))
        rows = self.splits[split]
        return sum(item["label"] == majority for item in rows) / len(rows)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if not self.splits:
            raise RuntimeError("call prepare() before using the data module")
        pad = self._tokenizer.eos_id
        collate = partial(collate_right_padded, pad_id=pad)
        return sharded_loader(self, self.splits[split], batch_size, shuffle, collate, self.seed, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def fingerprint(self) -> str:
        return f"classification:{self.train_file}:{self.val_file}:{self.max_train_rows}"
