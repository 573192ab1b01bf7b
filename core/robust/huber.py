"""Huber loss with the usual 1.345-sigma threshold, sigma the batch's MAD scale per
dimension (so one setting fits landmarks and ages alike)."""

from __future__ import annotations

import torch

from core.robust.base import Criterion, scaled_rho_loss

DELTA = 1.345  # 95% efficiency at the Gaussian


class HuberCriterion(Criterion):
    name = "huber"

    def loss(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        def rho(u: torch.Tensor) -> torch.Tensor:
            a = u.abs()
            return torch.where(a <= DELTA, 0.5 * a**2, DELTA * (a - 0.5 * DELTA))

        return scaled_rho_loss(pred, target, weight, rho)
