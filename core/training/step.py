"""One optimiser step's pieces: the module a step runs (the model and the method's
loss together, what DDP wraps and ``torch.compile`` compiles), the learning-rate
schedule, and what a training pass reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from core.robust.base import Method, split_output
from core.training.predict import autocast


def lr_at(step: int, total: int, base: float) -> float:
    """Linear warm-up over the first 3% of steps, then cosine decay to 1% of base."""
    warm = max(1, int(0.03 * total))
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


class TrainStep(nn.Module):
    """The model and the method's loss as one module: what DDP wraps (so the
    method's own parameters are averaged with the model's) and ``torch.compile``
    compiles. Returns the loss, the means and the log scales (or None)."""

    def __init__(self, model: nn.Module, method: Method, n_dims: int, amp: bool) -> None:
        super().__init__()
        self.model, self.method = model, method
        self.n_dims, self.amp = n_dims, amp

    def forward(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        with autocast(x.device, self.amp):
            raw = self.model(x)
        out = split_output(raw.float(), self.n_dims)
        return self.method.loss(out, y, w), out.mean, out.log_scale


@dataclass
class PassStats:
    """One training pass: mean loss, images per second (all ranks), the share of the
    pass spent waiting for batches, the device's figures, and this rank's share
    of the pass in each phase and its seconds
    (:class:`~core.training.throughput.PhaseClock`)."""

    loss: float
    images_per_s: float
    data_wait_share: float
    device: dict[str, float]
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def phases(self) -> dict[str, float]:
        """Each phase's share of the pass."""
        total = sum(self.phase_seconds.values())
        return {k: v / total if total > 0 else 0.0 for k, v in self.phase_seconds.items()}


