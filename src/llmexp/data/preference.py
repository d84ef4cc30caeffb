"""Preference pairs for DPO: a prompt (a conversation so far) with a chosen and a rejected reply.

Rows as LLaMA-Factory writes them, `{conversations: [{from, value}], chosen: {from, value}, rejected: {...}}`, or plain
`{prompt, chosen, rejected}` strings, or chat `{messages: [...], chosen, rejected}`. The prompt is rendered with the
chat template (the one SFT used, so a DPO run continues an SFT model in its own format); each reply ends with EOS.
Labels are -100 on the prompt, so log-probabilities count the reply's tokens only.
"""

from __future__ import annotations

import logging
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader

from llmexp.data.records import sharded_loader, train_and_val_rows
from llmexp.data.sft import IGNORE
from llmexp.errors import DataError
from llmexp.tokenizer import ChatTemplate, Tokenizer, TokenizerSpec

log = logging.getLogger(__name__)
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _text(reply) -> str:
    """A reply or turn as text: LLaMA-Factory's {from, value}, chat's {role, content}, or a plain string."""
    if isinstance(reply, dict):
        return reply["value"] if "value" in reply else reply.get("content", "")
    return str(reply)


def first_user_message(row: dict) -> str:
    if isinstance(row.get("prompt"), str):
        return row["prompt"]
    turns = row.get("conversations") or row.get("messages") or []
    return next((_text(t) for t in turns if ROLES.get(t.get("from") or t.get("role")) == "user"), "")


def prompt_of(row: dict, template: ChatTemplate) -> str:
    """The conversation before the replies, rendered with the template and ending in its generation prompt."""
    if "prompt" in row and isinstance(row["prompt"], str):
        return template.render_prompt([{"role": "user", "content": row["prompt"]}])
    turns = row.get("conversations") or row.get("messages")
    if not turns:
        raise DataError(f"preference row has no `conversations`, `messages` or `prompt`: {sorted(row)}")
    messages = []
    for turn in turns:
        role = ROLES.get(turn.get("from") or turn.get("role"))
        if role is None:
            raise DataError(f"preference row: unknown speaker {turn.get('from') or turn.get('role')!r}")
        messages.append({"role": role, "content": _text(turn)})
    return template.render_prompt(messages)


def encode_pair(tokenizer: Tokenizer, prompt: str, reply: str, block_size: int) -> dict[str, list[int]] | None:
    """input_ids and next-token labels (reply tokens and EOS only) within `block_size`, keeping the end of a long
    prompt; None when no reply token fits."""
    prompt_ids, reply_ids = tokenizer.encode(prompt), [*tokenizer.encode(reply), tokenizer.eos_id]
    room = block_size + 1 - len(reply_ids)
    if room < 1:
        reply_ids = reply_ids[:block_size]
        prompt_ids = prompt_ids[-1:]
    else:
        prompt_ids = prompt_ids[-room:]
    tokens = prompt_ids + reply_ids
    trained = [False] * len(prompt_ids) + [True] * len(reply_ids)
    labels = [t if keep else IGNORE for t, keep in zip(tokens[1:], trained[1:], strict=True)]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": tokens[:-1], "labels": labels}


def collate_pairs(items: list[dict[str, dict[str, list[int]]]], pad_id: int) -> dict[str, torch.Tensor]:
    """chosen_* and rejected_* tensors, right-padded to the longest sequence of the batch."""
    width = max(len(item[side]["input_ids"]) for item in items for side in ("chosen", "rejected"))
    batch = {}
    for side in ("chosen", "rejected"):
        for key, fill in (("input_ids", pad_id), ("labels", IGNORE)):
            rows = [item[side][key] + [fill] * (width - len(item[side][key])) for item in items]
            batch[f"{side}_{key}"] = torch.tensor(rows, dtype=torch.long)
    return batch


class PreferenceDataModule(L.LightningDataModule):
    """Preference pairs from a json/jsonl/csv/parquet file or a `datasets` name, rendered with `template`."""

    batch_kind = "preferences"

    def __init__(
        self,
        train_file: str,
        val_file: str | None = None,
        val_fraction: float = 0.1,
        block_size: int = 256,
        template: dict | None = None,
        max_train_rows: int | None = None,
        batch_size: int = 4,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
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
        self._prompts: list[str] = []

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
        rendered = {split: [self._render(row) for row in split_rows] for split, split_rows in rows.items()}
        if tokenizer is None:  # from scratch: trained on every prompt and reply of the training split
            texts = (text for prompt, chosen, rejected in rendered["train"] for text in (prompt + chosen, rejected))
            tokenizer = spec.train(texts)
        self._tokenizer = tokenizer
        firsts = zip(rendered["val"][:8], rows["val"][:8], strict=True)
        self._prompts = [(prompt, first_user_message(row)) for (prompt, _, _), row in firsts]
        for split, triples in rendered.items():
            pairs = []
            for prompt, chosen, rejected in triples:
                encoded = [encode_pair(tokenizer, prompt, reply, self.block_size) for reply in (chosen, rejected)]
                if None not in encoded:
                    pairs.append({"chosen": encoded[0], "rejected": encoded[1]})
            if len(pairs) < len(triples):
                skipped = len(triples) - len(pairs)
                log.warning("%s: %d pairs skipped (no reply token fits data.block_size)", split, skipped)
            if not pairs:
                raise DataError(f"data.train_file: no {split} pair has a reply within block_size={self.block_size}")
            self.splits[split] = pairs
        return tokenizer

    def _render(self, row: dict) -> tuple[str, str, str]:
        if "chosen" not in row or "rejected" not in row:
            raise DataError(f"preference row has no `chosen`/`rejected` reply: {sorted(row)}")
        return prompt_of(row, self.template), _text(row["chosen"]), _text(row["rejected"])

    def sample_prompts(self, count: int, chat: bool = False) -> list[str]:
        """The prompts of the first validation pairs: rendered (what the model continues) or, with `chat`, the bare
        user message (what `llmexp-generate chat=true` renders itself)."""
        return [message if chat else prompt for prompt, message in self._prompts[:count]]

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if not self.splits:
            raise RuntimeError("call prepare() before using the data module")
        batcher = partial(collate_pairs, pad_id=self.tokenizer.eos_id)
        return sharded_loader(self, self.splits[split], batch_size, shuffle, batcher, self.seed, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def fingerprint(self) -> str:
        return f"preference:{self.train_file}:{self.val_file}:{self.max_train_rows}:{self.block_size}"
