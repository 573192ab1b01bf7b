"""Tukey's biweight on MAD-scaled residuals (Belagiannis et al., ICCV 2015): the
residuals of each dimension are divided by 1.4826 * MAD over the batch, and a
residual beyond c = 4.685 scale units contributes a constant (zero gradient)."""

from __future__ import annotations

import torch

from core.robust.base import Method, Output, scaled_rho_loss

C = 4.685  # 95% efficiency at the Gaussian


def tukey_rho(u: torch.Tensor) -> torch.Tensor:
    inside = (1.0 - (u / C) ** 2).clamp_min(0.0)
    return (C**2 / 6.0) * (1.0 - inside**3)


class Tukey(Method):
    name = "tukey"
    description = "Tukey biweight on MAD-scaled residuals"

    def loss(self, out: Output, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return scaled_rho_loss(out.mean, target, weight, tukey_rho)
