"""What the training pass costs, measured without slowing it: images per second,
the share of the pass spent waiting for the next batch, and on CUDA the GPU's
utilisation and memory.

The data-wait share is the time the loop spends blocked on the loader divided
by the pass's wall time: near 0 when reading keeps ahead of the model, near 1
when the model waits on the disk. On a GPU the host runs ahead of the device
(nothing synchronises per batch), so the host's wall time per batch is the
device's and the share means the same there. Memory comes from torch's
allocator statistics (peak allocated and reserved over the epoch); utilisation
from NVML when ``pynvml`` (the ``nvidia-ml-py`` package) is installed, sampled
at the progress interval; without it the field is absent.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import torch

MIB = 2**20


class PhaseClock:
    """Wall time of each phase of a training pass, from marks the loop sets
    between phases (a ``perf_counter`` call each: nothing measurable). On a CPU
    every phase runs to its end before the next starts, so the times are exact:
    the ``step`` share is the share of the pass the model's own forward,
    backward and optimiser step take, measured in the same pass as the rest, so
    a slow spell of a shared machine moves both sides alike. On a GPU they are
    the host's times (the device runs behind), which tell whether the host keeps
    ahead, not what the device does."""

    PHASES = ("wait", "prepare", "step", "other")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        """The time since the last mark went to ``phase``."""
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now



class LossProbe:
    """The value of a device scalar (the loss) for progress reports, read without
    waiting for the device: on CUDA a non-blocking copy into pinned memory whose
    event is polled; the last completed value is reported."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.value = math.nan
        self._event: Any = None
        self._buf = torch.zeros((), pin_memory=True) if self.cuda else None

    def read(self, t: torch.Tensor) -> float:
        """The latest value of ``t`` available without a host synchronisation."""
        if not self.cuda:
            self.value = float(t.detach())
            return self.value
        assert self._buf is not None
        if self._event is not None and self._event.query():
            self.value = float(self._buf)
            self._event = None
        if self._event is None:
            self._buf.copy_(t.detach(), non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        return self.value


class DeviceMonitor:
    """Per epoch: peak GPU memory and mean utilisation (CUDA), nothing elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._nvml: Any = None
        self._handle: Any = None
        self._util: list[float] = []
        if self.cuda:
            with contextlib.suppress(Exception):  # optional: no pynvml, no driver access
                import pynvml

                pynvml.nvmlInit()
                index = device.index if device.index is not None else torch.cuda.current_device()
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                self._nvml = pynvml

    def start(self) -> None:
        self._util = []
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def sample(self) -> None:
        """Read the utilisation now (cheap; called at the progress interval)."""
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._util.append(
                    float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu) / 100.0)

    def metrics(self) -> dict[str, float]:
        """``gpu_memory_mb`` (peak allocated), ``gpu_memory_reserved_mb`` and, with
        NVML, ``gpu_util`` (mean share of time the GPU was busy) of the epoch."""
        if not self.cuda:
            return {}
        out = {"gpu_memory_mb": torch.cuda.max_memory_allocated(self.device) / MIB,
               "gpu_memory_reserved_mb": torch.cuda.max_memory_reserved(self.device) / MIB}
        if self._util:
            out["gpu_util"] = sum(self._util) / len(self._util)
        return out
