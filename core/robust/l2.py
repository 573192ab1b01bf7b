"""Plain least squares: the baseline that ranks labels by their residual."""

from __future__ import annotations

import torch

from core.robust.base import Criterion


class L2Criterion(Criterion):
    name = "l2"

    def loss(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return (weight * (target - pred) ** 2).sum(dim=1).mean()
