"""Instruction SFT data: rows rendered with the chat template, labels only on the response, optional packing.

Each example becomes (input_ids, labels) already shifted for next-token prediction: labels[i] is the token after
input_ids[i] where that token belongs to a response (or its closing EOS), and -100 (ignored) where it belongs to the
prompt. Packing puts several examples into one row of `block_size` tokens with `segment_ids` and restarted
`position_ids`, so the task can keep attention inside each example.
"""

from __future__ import annotations

import logging
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader

from llmexp.data.records import sharded_loader, train_and_val_rows
from llmexp.errors import DataError
from llmexp.tokenizer import ChatTemplate, Tokenizer, TokenizerSpec

log = logging.getLogger(__name__)
IGNORE = -100


def segments_of(row: dict, template: ChatTemplate) -> list[tuple[str, bool]]:
    """(text, is_response) pieces of one row: Alpaca {instruction, input, output} or chat {messages: [...]}."""
    if "messages" in row:
        messages, pieces = row["messages"], []
        for index, message in enumerate(messages):
            if message["role"] == "assistant":
                last = index == len(messages) - 1
                pieces += [(template.generation_prompt, False), (message["content"] + ("" if last else "\n"), True)]
            else:
                pieces.append((template.turn(message["role"], message["content"]), False))
        return pieces
    if "instruction" in row and "output" in row:
        prompt = template.instruction_prompt(row["instruction"], row.get("input") or "", row.get("system"))
        return [(prompt, False), (row["output"], True)]
    raise DataError(f"SFT row has neither `messages` nor `instruction`/`output` fields: {sorted(row)}")


def user_message(row: dict) -> str | None:
    """The first user turn of a row (Alpaca: the instruction and its input), or None."""
    if "messages" in row:
        return next((m["content"] for m in row["messages"] if m.get("role") == "user"), None)
    if "instruction" in row:
        return f"{row['instruction']}\n\n{row['input']}" if row.get("input") else row["instruction"]
    return None


def encode_example(
    tokenizer: Tokenizer, segments: list[tuple[str, bool]], block_size: int
) -> tuple[list[int], list[int]] | None:
    """(input_ids, labels) for one example, cut to `block_size`; None when no response token fits."""
    tokens, trained = [], []
    for text, is_response in segments:
        ids = tokenizer.encode(text)
        tokens += ids
        trained += [is_response] * len(ids)
    tokens.append(tokenizer.eos_id)
    trained.append(True)  # the model learns to end its reply
    tokens, trained = tokens[: block_size + 1], trained[: block_size + 1]
    labels = [t if keep else IGNORE for t, keep in zip(tokens[1:], trained[1:], strict=True)]
    if all(label == IGNORE for label in labels):
        return None
    return tokens[:-1], labels


def pack(examples: list[tuple[list[int], list[int]]], block_size: int, pad_id: int) -> list[dict[str, list[int]]]:
    """First-fit packing of whole examples into rows of exactly `block_size` tokens (padding has segment -1)."""
    rows: list[dict[str, list[int]]] = []
    for ids, labels in examples:
        row = next((r for r in rows if len(r["input_ids"]) + len(ids) <= block_size), None)
        if row is None:
            row = {"input_ids": [], "labels": [], "segment_ids": [], "position_ids": []}
            rows.append(row)
        segment = (row["segment_ids"][-1] + 1) if row["segment_ids"] else 0
        row["input_ids"] += ids
        row["labels"] += labels
        row["segment_ids"] += [segment] * len(ids)
        row["position_ids"] += list(range(len(ids)))
    for row in rows:
        free = block_size - len(row["input_ids"])
        row["input_ids"] += [pad_id] * free
        row["labels"] += [IGNORE] * free
        row["segment_ids"] += [-1] * free
        row["position_ids"] += [0] * free
    return rows


def collate(items: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad unpacked examples (a causal model needs no mask for that) or stack packed rows."""
    width = max(len(item["input_ids"]) for item in items)
    fill = {"input_ids": pad_id, "labels": IGNORE, "segment_ids": -1, "position_ids": 0}
    return {
        key: torch.tensor([item[key] + [fill[key]] * (width - len(item[key])) for item in items], dtype=torch.long)
        for key in items[0]
    }


class SFTDataModule(L.LightningDataModule):
    """Instruction or chat rows from json/jsonl/csv/parquet files or a `datasets` name."""

    batch_kind = "instructions"

    def __init__(
        self,
        train_file: str,
        val_file: str | None = None,
        val_fraction: float = 0.05,
        block_size: int = 256,
        packing: bool = True,
        template: dict | None = None,
        max_train_rows: int | None = None,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if block_size < 2 or batch_size < 1:
            raise DataError(f"data.block_size must be >= 2 and data.batch_size >= 1 (got {block_size}, {batch_size})")
        self.train_file, self.val_file, self.val_fraction = train_file, val_file, val_fraction
        self.block_size, self.packing, self.max_train_rows = block_size, packing, max_train_rows
        self.template = ChatTemplate.from_dict(template)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.splits: dict[str, list[dict[str, list[int]]]] = {}
        self._tokenizer: Tokenizer | None = None
        self._messages: list[str] = []

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            raise RuntimeError("call prepare() before using the data module")
        return self._tokenizer

    def _rows(self) -> dict[str, list[dict]]:
        train, val = train_and_val_rows(self.train_file, self.val_file, self.val_fraction, self.seed)
        return {"train": train[: self.max_train_rows], "val": val}

    def prepare(self, spec: TokenizerSpec, tokenizer: Tokenizer | None = None) -> Tokenizer:
        rows = self._rows()
        self._messages = [m for m in map(user_message, rows["val"][:8]) if m]
        if tokenizer is None:  # from scratch: a tokenizer trained on the rendered training rows
            texts = ("".join(text for text, _ in segments_of(row, self.template)) for row in rows["train"])
            tokenizer = spec.train(texts)
        self._tokenizer = tokenizer
        for split, split_rows in rows.items():
            encoded = [encode_example(tokenizer, segments_of(r, self.template), self.block_size) for r in split_rows]
            examples = [e for e in encoded if e is not None]
            if len(examples) < len(encoded):
                log.warning(
                    "%s: %d rows skipped (no response token fits data.block_size)", split, len(encoded) - len(examples)
                )
            if not examples:
                raise DataError(
                    f"data.train_file: no {split} example has a response within block_size={self.block_size}"
                )
            if self.packing:
                self.splits[split] = pack(examples, self.block_size, tokenizer.eos_id)
            else:
                self.splits[split] = [{"input_ids": ids, "labels": labels} for ids, labels in examples]
        return tokenizer

    def sample_prompts(self, count: int, chat: bool = False) -> list[str]:
        """The user turns of the first `count` validation rows: rendered with the chat template (what the model
        continues), or the bare message when `chat` (what `llmexp-generate chat=true` renders itself)."""
        return [
            m if chat else self.template.render_prompt([{"role": "user", "content": m}]) for m in self._messages[:count]
        ]

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if not self.splits:
            raise RuntimeError("call prepare() before using the data module")
        batcher = partial(collate, pad_id=self._tokenizer.eos_id)
        return sharded_loader(self, self.splits[split], batch_size, shuffle, batcher, self.seed, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def fingerprint(self) -> str:
        return f"sft:{self.train_file}:{self.val_file}:{self.max_train_rows}:{self.block_size}:{self.packing}"
