"""Huber loss with the usual 1.345-sigma threshold, sigma the batch's MAD scale per
dimension (so one setting fits landmarks and ages alike)."""

from __future__ import annotations

import torch

from core.robust.base import Method, Output, scaled_rho_loss

DELTA = 1.345  # 95% efficiency at the Gaussian


def huber_rho(u: torch.Tensor) -> torch.Tensor:
    a = u.abs()
    return torch.where(a <= DELTA, 0.5 * a**2, DELTA * (a - 0.5 * DELTA))


class Huber(Method):
    name = "huber"
    description = "Huber loss on MAD-scaled residuals"

    def loss(self, out: Output, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return scaled_rho_loss(out.mean, target, weight, huber_rho)
