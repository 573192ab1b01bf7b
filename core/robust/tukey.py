"""Tukey's biweight on MAD-scaled residuals (Belagiannis et al., ICCV 2015): the
residuals of each dimension are divided by 1.4826 * MAD over the batch, and a
residual beyond c = 4.685 scale units contributes a constant (zero gradient)."""

from __future__ import annotations

import torch

from core.robust.base import Criterion, scaled_rho_loss

C = 4.685  # 95% efficiency at the Gaussian


class TukeyCriterion(Criterion):
    name = "tukey"

    def loss(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        def rho(u: torch.Tensor) -> torch.Tensor:
            inside = (1.0 - (u / C) ** 2).clamp_min(0.0)
            return (C**2 / 6.0) * (1.0 - inside**3)

        return scaled_rho_loss(pred, target, weight, rho)
