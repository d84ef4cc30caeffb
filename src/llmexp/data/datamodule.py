"""DataModule for causal language modelling on packed token streams."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from llmexp.data.corpus import Corpus
from llmexp.data.prepared import TokenizedCorpus, prepare, tokenize_corpus
from llmexp.data.sampler import ResumableLoader, ResumableSampler, trainer_position
from llmexp.tokenizer import Tokenizer, TokenizerSpec

PROMPT_TOKENS = 6  # length of a sample prompt taken from the validation data


class PackedBlocks(Dataset):
    """Consecutive blocks of `block_size + 1` tokens from one stream (documents run across block edges, separated by
    EOS, as GPT-2 trains). Item i is the input/target pair of block i."""

    def __init__(self, tokens: np.ndarray, block_size: int):
        self.tokens, self.block_size = tokens, block_size
        self.num_blocks = (len(tokens) - 1) // block_size
        if self.num_blocks < 1:
            raise ValueError(f"{len(tokens)} tokens are too few for one block of {block_size}; lower data.block_size")

    def __len__(self) -> int:
        return self.num_blocks

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = index * self.block_size
        window = torch.from_numpy(self.tokens[start : start + self.block_size + 1].astype(np.int64))
        return {"input_ids": window[:-1], "labels": window[1:]}


class CausalLMDataModule(L.LightningDataModule):
    """Corpus -> tokenizer -> packed blocks, shuffled from the seed, with the data position saved in checkpoints."""

    batch_kind = "token_blocks"  # what it feeds a Task (Task.accepts); a collator makes another kind

    def __init__(
        self,
        corpus: Corpus,
        block_size: int = 256,
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 1,
        cache_dir: str = "outputs/cache",
        seed: int = 0,
        collator: Callable[..., Callable] | None = None,
    ):
        """`collator`: a factory called with `tokenizer=` once it exists (masked LM, span corruption); None stacks
        the causal input/label pairs."""
        super().__init__()
        if block_size < 2 or batch_size < 1:
            raise ValueError(f"data.block_size must be >= 2 and data.batch_size >= 1 (got {block_size}, {batch_size})")
        self.corpus, self.block_size, self.batch_size = corpus, block_size, batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers, self.cache_dir, self.seed = num_workers, cache_dir, seed
        self.prepared: TokenizedCorpus | None = None
        self._legacy_position: dict[str, int] | None = None
        self.collator_factory, self.collate_fn = collator, None

    def prepare(self, spec: TokenizerSpec, tokenizer: Tokenizer | None = None) -> Tokenizer:
        """Train or load the tokenizer (or take the given one, e.g. from a checkpoint) and tokenise the corpus.

        Called explicitly before the model is built: the model's vocabulary size comes from the tokenizer.
        """
        if tokenizer is None:
            self.prepared = prepare(self.corpus, spec, self.cache_dir)
        else:
            tokens = tokenize_corpus(self.corpus, tokenizer, Path(self.cache_dir))
            self.prepared = TokenizedCorpus(tokenizer=tokenizer, tokens=tokens, tokenizer_path=None)
        if self.collator_factory is not None:
            self.collate_fn = self.collator_factory(tokenizer=self.prepared.tokenizer)
        return self.prepared.tokenizer

    def fingerprint(self) -> str:
        """Identity of the training data (recorded in each run's provenance)."""
        return self.corpus.fingerprint()

    @property
    def tokenizer(self) -> Tokenizer:
        if self.prepared is None:
            raise RuntimeError("call prepare() before using the data module")
        return self.prepared.tokenizer

    def dataset(self, split: str) -> PackedBlocks:
        if self.prepared is None:
            raise RuntimeError("call prepare() before using the data module")
        return PackedBlocks(self.prepared.tokens[split], self.block_size)

    def sample_prompts(self, count: int, chat: bool = False) -> list[str]:
        """The first words of `count` validation texts, spread over the split: prompts that read like the data the
        model learns (the samples callback continues them; run hints show one)."""
        dataset = self.dataset("val")
        picks = sorted({round(i * (len(dataset) - 1) / max(count - 1, 1)) for i in range(count)})
        prompts = []
        for index in picks:
            ids = dataset[index]["input_ids"].tolist()
            eos = self.tokenizer.eos_id
            start = ids.index(eos) + 1 if eos in ids[:-PROMPT_TOKENS] else 0  # begin at a document start
            text = self.tokenizer.decode(ids[start : start + PROMPT_TOKENS]).strip()
            if text:
                prompts.append(text)
        return prompts

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: PackedBlocks, sampler: ResumableSampler, batch_size: int, train: bool) -> DataLoader:
        resumable = {"position": trainer_position(self)} if train else {}
        return (ResumableLoader if train else DataLoader)(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            **resumable,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        accumulate = getattr(self.trainer, "accumulate_grad_batches", 1)  # 1 outside a Lightning Trainer
        sampler = ResumableSampler(
            len(self.dataset("train")),
            self.seed,
            shuffle=True,
            rank=rank,
            world_size=world,
            step_samples=self.batch_size * accumulate,
        )
        if self._legacy_position is not None:  # a checkpoint written before loaders kept their own position
            sampler.resume_from(self._legacy_position["epoch"], self._legacy_position["batches"] * self.batch_size)
            self._legacy_position = None
        return self._loader(self.dataset("train"), sampler, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        dataset = self.dataset("val")
        if len(dataset) < self.val_batch_size * world:
            raise ValueError(
                f"the val split has {len(dataset)} blocks, fewer than one batch per rank "
                f"({self.val_batch_size} x {world}); lower data.val_batch_size or raise data.corpus.val_fraction"
            )
        sampler = ResumableSampler(len(dataset), self.seed, shuffle=False, rank=rank, world_size=world)
        return self._loader(dataset, sampler, self.val_batch_size, train=False)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Older checkpoints kept the data position here; the training loader now keeps it (ResumableLoader)."""
        if state_dict:
            self._legacy_position = {"epoch": int(state_dict["epoch"]), "batches": int(state_dict["batches"])}
