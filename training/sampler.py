"""
An endless, resumable training sampler built on ``DistributedSampler``.

Epoch ``e`` is ``DistributedSampler(shuffle=True, seed, drop_last=True)`` at ``set_epoch(e)``
(the usual per-rank shard; one process is rank 0 of 1). Each yielded item is
``(dataset index, augmentation seed)`` where the seed depends only on (seed, epoch, position),
so starting at sample ``start`` reproduces the uninterrupted stream exactly: data order *and*
augmentations, whatever the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler, Sampler


class ResumableSampler(Sampler):
    def __init__(self, dataset: Dataset, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start: int = 0) -> None:
        self.dist = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                       seed=seed, drop_last=True)
        self.per_epoch = len(self.dist)
        if self.per_epoch == 0:
            raise ValueError(f"the dataset ({len(dataset)} samples) is smaller than the number "
                             f"of processes ({world_size})")
        self.seed = seed
        self.rank = rank
        self.start = start  # samples of this rank already consumed

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            self.dist.set_epoch(epoch)
            indices = list(self.dist)
            for pos in range(offset, self.per_epoch):
                # a distinct, reproducible augmentation seed per (rank, epoch, position)
                aug_seed = hash((self.seed, self.rank, epoch, pos)) & 0x7FFFFFFF
                yield indices[pos], aug_seed
            epoch, offset = epoch + 1, 0
