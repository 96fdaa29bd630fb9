"""The one sharding rule of an evaluation: each rank evaluates only its own share, and no sample twice.

Generated samples: rank ``r`` of ``W`` draws the contiguous global indices ``shard_bounds(N, r, W)`` of the
seeded sample stream. Dataloaders (real images, masks, reconstruction inputs): rank ``r`` of ``W`` owns batches
``r, r + W, r + 2W, ...`` of the loader's fixed order: every batch is read by exactly one rank, with none of
``DistributedSampler``'s duplicate padding. For a map-style dataset the loader's batch sampler is iterated
(indices only, no data) and a loader over this rank's index lists is built, so a rank decodes only its own images.
An iterable dataset has no indices to select: every rank iterates all of it and drops the other ranks' batches
after loading them (the loading cost is paid ``W`` times).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader, IterableDataset

# DataLoader arguments that are copied to the per-rank loader, with the value that means "not set".
_LOADER_OPTIONS = {
    "num_workers": 0,
    "collate_fn": None,
    "pin_memory": False,
    "timeout": 0,
    "worker_init_fn": None,
    "multiprocessing_context": None,
    "generator": None,
    "prefetch_factor": None,
    "persistent_workers": False,
    "pin_memory_device": "",
    "in_order": True,
}


@dataclass(frozen=True)
class RankBatch:
    """One batch of the loader read by this rank: its position in the loader, the global index of its first
    sample, and the batch itself."""

    index: int
    offset: int
    batch: Any


class RankShare:
    """The batches of ``loader`` that rank ``rank`` of ``world_size`` reads, with their positions.

    ``num_batches`` (the loader's total) is known before iterating for a map-style dataset, and after a full
    iteration for an iterable one.

    Example:
        >>> import torch
        >>> loader = DataLoader(torch.arange(10), batch_size=3)
        >>> share = RankShare(loader, rank=1, world_size=2)
        >>> [(b.index, b.offset, b.batch.tolist()) for b in share]
        [(1, 3, [3, 4, 5]), (3, 9, [9])]
        >>> share.num_batches, share.reads_only_own_batches
        (4, True)
    """

    def __init__(self, loader: DataLoader, *, rank: int, world_size: int) -> None:
        self.loader = loader
        self.rank = rank
        self.world_size = world_size
        self._indices = _index_batches(loader)
        self.num_batches: int | None = None if self._indices is None else len(self._indices)

    @property
    def reads_only_own_batches(self) -> bool:
        """Whether this rank loads only its own batches (a map-style dataset), not every batch."""
        return self._indices is not None

    def __iter__(self) -> Iterator[RankBatch]:
        if self._indices is None:
            yield from self._iterate_all()
            return
        mine = [(i, indices) for i, indices in enumerate(self._indices) if i % self.world_size == self.rank]
        offsets, total = [], 0
        for indices in self._indices:
            offsets.append(total)
            total += len(indices)
        loader = _loader_over(self.loader, [indices for _, indices in mine])
        for (index, _), batch in zip(mine, loader, strict=True):
            yield RankBatch(index, offsets[index], batch)

    def _iterate_all(self) -> Iterator[RankBatch]:
        offset = count = 0
        for index, batch in enumerate(self.loader):
            count = index + 1
            if index % self.world_size == self.rank:
                yield RankBatch(index, offset, batch)
            offset += _batch_length(batch)
        self.num_batches = count


def shard_bounds(num_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """The global sample indices ``[start, stop)`` rank ``rank`` of ``world_size`` evaluates.

    The shards are contiguous, differ in size by at most one, and cover ``range(num_samples)`` exactly once.

    Example:
        >>> [shard_bounds(10, r, 3) for r in range(3)]
        [(0, 3), (3, 6), (6, 10)]
    """
    return rank * num_samples // world_size, (rank + 1) * num_samples // world_size


def _index_batches(loader: DataLoader) -> list[list[int]] | None:
    """The loader's batches as lists of dataset indices, or ``None`` when it has none (an iterable dataset)."""
    if isinstance(loader.dataset, IterableDataset) or loader.batch_sampler is None:
        return None
    return [list(indices) for indices in loader.batch_sampler]


def _loader_over(loader: DataLoader, batches: list[list[int]]) -> DataLoader:
    """A loader like ``loader`` (workers, collation, pinning) that yields exactly ``batches``."""
    accepted = inspect.signature(DataLoader.__init__).parameters  # `in_order` is new in torch 2.6
    options = {name: getattr(loader, name, default) for name, default in _LOADER_OPTIONS.items() if name in accepted}
    if not options["num_workers"]:
        options.update(prefetch_factor=None, persistent_workers=False)
    return DataLoader(loader.dataset, batch_sampler=batches, **options)


def _batch_length(batch: Any) -> int:
    """The number of samples in a batch: a tensor's first dimension, or that of a tuple/list/dict batch's first
    tensor."""
    if hasattr(batch, "shape") and len(batch.shape) > 0:
        return int(batch.shape[0])
    entries = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else ()
    for entry in entries:
        if hasattr(entry, "shape") and len(entry.shape) > 0:
            return int(entry.shape[0])
    raise TypeError(f"Expected a batch holding a tensor with a batch dimension, got {type(batch).__name__}.")


def known_sample_count(loader: DataLoader) -> int | None:
    """The number of samples ``loader`` yields, when it can be told without loading data (a map-style dataset
    with a batch sampler: its index lists are counted), else ``None``.

    Example:
        >>> import torch
        >>> known_sample_count(DataLoader(torch.arange(10), batch_size=3, drop_last=True))
        9
    """
    batches = _index_batches(loader)
    return None if batches is None else sum(len(indices) for indices in batches)
