"""Plain least squares: the baseline that ranks labels by their residual."""

from __future__ import annotations

import torch

from core.robust.base import Method, Output


class L2(Method):
    name = "l2"
    description = "least squares (residual ranking baseline)"

    def loss(self, out: Output, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return (weight * (target - out.mean) ** 2).sum(dim=1).mean()
