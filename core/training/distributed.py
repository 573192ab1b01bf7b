"""One run on several processes: ``torchrun`` and DistributedDataParallel.

``torchrun --nproc-per-node N -m core train PROJECT ...`` (or the same under
``srun`` with a multi-node rendezvous) starts N copies of the trainer; each
learns its place from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``). They train one run together:

- rank 0 alone opens the project file: it creates (or resumes) the run, builds
  the image cache, and sends the other ranks what they need (the settings, the
  normalised targets, where the cache rows are) while they wait: the cache is
  built once, behind that barrier, and SQLite is never opened by two processes
  of a run (nor over a network file system by the other nodes);
- every global batch of ``batch_size`` samples is split between the ranks (each
  takes a contiguous share, the way ``DistributedSampler`` shards an epoch), the
  gradients are averaged by DDP, and batch norm is synchronised (SyncBatchNorm)
  on CUDA, so the optimiser takes the same steps whatever the number of
  processes and a run of N processes matches a run of one within noise;
- the evaluation passes (the E-step's residuals, validation, scoring) are
  sharded and gathered, so every rank fits the same mixture;
- a stop (Ctrl-C, SIGTERM from a scheduler) on any rank is agreed by all at the
  next batch, and rank 0 alone writes runs, epochs, scores and checkpoints.

Backends: ``gloo`` on CPU (what the tests run), ``cpu:gloo,cuda:nccl`` when
CUDA is available (NCCL for the model's tensors, gloo for the small agreements
and gathers this module does on host memory). Without torchrun (``WORLD_SIZE``
unset or 1) :data:`SINGLE` stands in and every operation here is the identity.
"""

from __future__ import annotations

import datetime
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as td
from torch import nn

from core.training.data import TrainingStopped

# collectives wait this long for a slow rank (e.g. rank 0 building a large image
# cache) before failing; GUMSHOE_DIST_TIMEOUT_S overrides it
DEFAULT_TIMEOUT_S = 3600


T = TypeVar("T")


class PeerError(RuntimeError):
    """Rank 0 failed at something the other ranks wait for (its message is repeated
    here); they end with it instead of waiting."""


@dataclass(frozen=True)
class _Failed:
    message: str
    stopped: bool = False


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return 0
    return int(os.environ.get("RANK", "0") or 0)


class Dist:
    """This process's place in a run: ``rank`` of ``world`` processes."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0,
                 local_world: int = 1, backend: str = "", owns: bool = False) -> None:
        self.rank, self.world = rank, world
        self.local_rank, self.local_world = local_rank, local_world
        self.backend = backend
        self._owns = owns  # this object started the process group (and ends it)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def writer(self) -> bool:
        """Whether this process writes the project (rank 0)."""
        return self.rank == 0

    def describe(self) -> str:
        return f"{self.world} processes ({self.backend})" if self.active else "1 process"

    # ----------------------------------------------------------- set-up

    @classmethod
    def from_env(cls) -> Dist:
        """The process group torchrun asked for (started here unless already up), or
        :data:`SINGLE` without torchrun."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return SINGLE
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        cuda = torch.cuda.is_available()
        backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
        owns = not td.is_initialized()
        if owns:
            if cuda:
                torch.cuda.set_device(local_rank % torch.cuda.device_count())
            timeout = int(os.environ.get("GUMSHOE_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
            td.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        return cls(rank, world, local_rank, local_world, backend, owns)

    def close(self) -> None:
        if self._owns and td.is_initialized():
            td.destroy_process_group()
            self._owns = False

    def device(self, device: torch.device) -> torch.device:
        """This rank's device of the kind the run asked for (``cuda`` -> its own GPU)."""
        if device.type == "cuda" and self.active:
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return device

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` under DistributedDataParallel (SyncBatchNorm first on CUDA:
        torch's synchronised batch norm has no CPU kernels, so on CPU each rank
        normalises by its own share of the batch and the running statistics are
        rank 0's, broadcast at every step)."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
            return DistributedDataParallel(module, device_ids=[device.index],
                                           output_device=device.index)
        return DistributedDataParallel(module)

    # ----------------------------------------------------------- agreement

    def barrier(self) -> None:
        if self.active:
            td.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled, over host memory)."""
        if not self.active:
            return obj
        box = [obj if self.writer else None]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def run_on_writer(self, fn: Callable[[], T],
                      for_peers: Callable[[T], Any] | None = None) -> T:
        """``fn()`` run on rank 0 alone; the other ranks get its result (passed through
        ``for_peers`` first, if given). If it fails there, they raise
        :class:`PeerError` with its message instead of waiting (a stop,
        :class:`~core.training.data.TrainingStopped`, stops them too)."""
        if not self.active:
            return fn()
        if self.writer:
            try:
                result = fn()
            except Exception as exc:
                self.broadcast(_Failed(_one_line(exc), isinstance(exc, TrainingStopped)))
                raise
            self.broadcast(result if for_peers is None else for_peers(result))
            return result
        got = self.broadcast(None)
        if isinstance(got, _Failed):
            if got.stopped:
                raise TrainingStopped
            raise PeerError(got.message)
        return got

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (a stop asked on one rank stops all)."""
        if not self.active:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item())

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over the ranks."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        td.all_reduce(t, op=td.ReduceOp.SUM)
        return t.tolist()

    # ----------------------------------------------------------- sharding

    def bounds(self, n: int) -> tuple[int, int]:
        """This rank's contiguous share [lo, hi) of ``n`` items (sizes differ by at most one)."""
        return n * self.rank // self.world, n * (self.rank + 1) // self.world

    def shard(self, index: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds(len(index))
        return index[lo:hi]

    def gather(self, part: np.ndarray | None) -> np.ndarray | None:
        """The ranks' ``part`` arrays concatenated in rank order (first dimensions may
        differ; None stands for no rows, e.g. a rank whose share of a small pass was
        empty; None on every rank gives None)."""
        if not self.active:
            return part
        meta = self._gather_objects(None if part is None else (part.shape, part.dtype.str))
        known = [m for m in meta if m is not None]
        if not known:
            return None
        rows = [0 if m is None else int(m[0][0]) for m in meta]
        tail, dtype = tuple(known[0][0][1:]), np.dtype(known[0][1])
        longest = max(max(rows), 1)
        padded = np.zeros((longest, *tail), dtype)
        if part is not None:
            padded[:len(part)] = part
        t = torch.from_numpy(padded)
        out = [torch.empty_like(t) for _ in range(self.world)]
        td.all_gather(out, t)
        return np.concatenate([o.numpy()[:n] for o, n in zip(out, rows, strict=True)])

    def _gather_objects(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def same(self, obj: Any) -> bool:
        """Whether ``obj`` (pickled) is the same on every rank (a cheap check that the
        ranks read the same data)."""
        if not self.active:
            return True
        blobs = self._gather_objects(pickle.dumps(obj))
        return all(b == blobs[0] for b in blobs)

    def sync_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) on every rank, so every
        rank evaluates the model rank 0 checkpoints."""
        if not self.active:
            return
        for b in module.buffers():
            td.broadcast(b.data, src=0)


SINGLE = Dist()
