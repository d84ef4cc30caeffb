"""A shuffling sampler that is deterministic from (seed, epoch), splits the data between ranks, and can start part-way
through an epoch, so a resumed run sees exactly the samples it would have seen."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler[int]):
    """Indices of this rank's share of a permutation of range(num_samples), from `start` on.

    `step_samples` (a rank's samples per optimizer step: batch size x gradient accumulation) trims each rank's share
    to whole steps, so every step of an epoch trains on a full global batch, and the epoch holds the same steps with
    any process layout that has the same global batch (what an elastic resume needs).
    """

    def __init__(
        self,
        num_samples: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        step_samples: int = 1,
    ):
        if num_samples < world_size:
            raise ValueError(f"{num_samples} samples cannot be shared by {world_size} ranks")
        self.num_samples, self.seed, self.shuffle = num_samples, seed, shuffle
        self.rank, self.world_size, self.step_samples = rank, world_size, step_samples
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples of this rank already consumed)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def resume_from(self, epoch: int, consumed: int) -> None:
        """Skip the first `consumed` samples of `epoch` (only that epoch)."""
        self._resume = (epoch, consumed)

    def __len__(self) -> int:
        share = self.num_samples // self.world_size
        return share - share % self.step_samples if share >= self.step_samples else share

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        # Drop the remainder so every rank gets the same number of samples (collectives must stay in step).
        mine = order[self.rank : len(self) * self.world_size : self.world_size]
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
            self._resume = None
        return iter(mine[start:].tolist())


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning stops and continues mid-epoch (its `_Stateful` protocol): the state is the epoch
    and the number of batches the trainer has consumed from it, and loading a state makes the ResumableSampler skip
    those batches, so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, *args, position: Callable[[], tuple[int, int]], **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler):
            raise TypeError("ResumableLoader needs a ResumableSampler")
        self._position = position

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self._position()
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume_from(int(state["epoch"]), int(state["batches"]) * self.batch_size)


def trainer_position(datamodule) -> Callable[[], tuple[int, int]]:
    """(epoch, batches of it processed) as the fit loop counts them, read when a checkpoint is written."""

    def position() -> tuple[int, int]:
        trainer = datamodule.trainer
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    return position
