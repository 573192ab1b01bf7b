"""Batches of cached images for the loop: a ``DataLoader`` over the memory-mapped
uint8 image cache.

The loop decides what each pass reads (the shuffled training batches of an
epoch, this rank's share of each in a distributed run, or the rows of an
evaluation pass, in order) and hands the list to :class:`Batches`; its sampler
yields exactly that list, so which samples a batch holds never depends on the
loader, the number of workers or the number of processes. Each item is read
in one sorted sweep of the cache file (:class:`core.images.CachedImages`) and
arrives as a (B, S, S, 3) uint8 tensor with the keys the loop attached to it
(positions in the training set, or row offsets).

With ``workers`` > 0 the reads run in that many persistent worker processes
(started once per trainer, by forkserver rather than fork, since the GUI trains
in a thread of a Qt process), each with its own read-only map of the cache
file, ahead of the model; on CUDA the batches come in pinned memory so the copy
to the GPU overlaps the previous step. On a CPU the model itself uses every
core, and a worker only competes with it: :func:`auto_workers` is 0 there
(``benchmarks/bench_throughput.py`` measures both).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from core.images import CachedImages

MAX_AUTO_WORKERS = 8
PREFETCH = 4  # batches each worker reads ahead

Item = tuple[np.ndarray, np.ndarray]  # (cache rows of the data, keys returned with them)


class CacheRows(Dataset):
    """An item is a whole batch: ``(rows, keys)`` -> (uint8 (B, S, S, 3), keys)."""

    def __init__(self, images: CachedImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: Item) -> tuple[torch.Tensor, torch.Tensor]:
        rows, keys = item
        return torch.from_numpy(self.images[rows]), torch.from_numpy(np.asarray(keys))


class Plan(Sampler[Item]):
    """The batches of the next pass, in order (set before each pass)."""

    def __init__(self) -> None:
        self.items: list[Item] = []

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def auto_workers(device: torch.device, local_processes: int = 1) -> int:
    """Reader processes per trainer when the setting is ``auto`` (-1): none on a CPU
    (the model already uses every core), else a share of the cores per process."""
    if device.type == "cpu":
        return 0
    cores = os.cpu_count() or 2
    return max(1, min(MAX_AUTO_WORKERS, cores // max(1, local_processes) - 1))


class Batches:
    """One loader for every pass of a trainer (its workers persist between passes)."""

    def __init__(self, images: CachedImages, device: torch.device, workers: int) -> None:
        self.plan = Plan()
        self.workers = max(0, int(workers))
        kwargs: dict = {}
        if self.workers:
            methods = multiprocessing.get_all_start_methods()
            kwargs = dict(num_workers=self.workers, persistent_workers=True,
                          prefetch_factor=PREFETCH,
                          multiprocessing_context="forkserver" if "forkserver" in methods
                          else "spawn")
        # a generator of its own: the loader draws a seed for its workers each pass,
        # which must not move the run's random numbers (dropout) with the worker count
        self.loader: DataLoader | None = DataLoader(
            CacheRows(images), batch_size=None, sampler=self.plan,
            pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0),
            **kwargs)

    def __call__(self, items: Sequence[Item]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """An iterator over ``items``' batches, read ahead by the workers."""
        assert self.loader is not None, "loader closed"
        self.plan.items = list(items)
        return iter(self.loader)

    def close(self) -> None:
        """Stop the workers (the loader is not used again)."""
        loader, self.loader = self.loader, None
        if loader is not None and getattr(loader, "_iterator", None) is not None:
            it = loader._iterator
            loader._iterator = None
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()


def batch_items(rows: np.ndarray, batch: int, count: int | None = None) -> list[Item]:
    """``rows`` in order as items of at most ``batch`` rows, keyed by their offset;
    padded with empty items to ``count`` (every rank of a distributed evaluation
    takes as many steps, so their stop checks line up)."""
    items: list[Item] = [(rows[i:i + batch], np.arange(i, min(i + batch, len(rows))))
                         for i in range(0, len(rows), batch)]
    empty = (rows[:0], np.zeros(0, np.int64))
    while count is not None and len(items) < count:
        items.append(empty)
    return items
