"""Huber loss with the usual 1.345-sigma threshold, sigma the batch's MAD scale per
dimension (so one setting fits landmarks and ages alike)."""

from __future__ import annotations

import torch

from core.robust.base import Criterion, batch_sigma

DELTA = 1.345  # 95% efficiency at the Gaussian


class HuberCriterion(Criterion):
    name = "huber"

    def loss(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        res = target - pred
        sigma = batch_sigma(res, weight)
        u = (res / sigma).abs()
        rho = torch.where(u <= DELTA, 0.5 * u**2, DELTA * (u - 0.5 * DELTA))
        return (weight * rho * sigma**2).sum(dim=1).mean()
