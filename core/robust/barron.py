"""Barron's general adaptive robust loss (CVPR 2019), adaptive form.

The loss is the negative log-likelihood of the residual under the distribution
p(x | alpha, c) = exp(-rho(x / c, alpha)) / (c Z(alpha)), with the shape alpha and
scale c of every output dimension learnt with the network. alpha is kept in
(0.001, 1.999) (Barron's default range); log Z(alpha) is integrated numerically
once on a grid and interpolated linearly (differentiable in alpha).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.integrate import quad

from core.robust.base import Method, Output, Problem

ALPHA_LO, ALPHA_HI = 0.001, 1.999
SCALE_LO = 1e-4
SCALE_INIT = 0.05  # residual units: a few per cent of the input square
GRID = 128


def rho(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Barron's rho(x, alpha, 1) for alpha in (0, 2), in a form stable near alpha = 0."""
    b = (alpha - 2.0).abs()
    return b / alpha * torch.expm1(0.5 * alpha * torch.log1p(x**2 / b))


def _rho_np(x: float, alpha: float) -> float:
    b = abs(alpha - 2.0)
    return b / alpha * math.expm1(0.5 * alpha * math.log1p(x * x / b))


@functools.cache
def log_partition_table() -> tuple[np.ndarray, np.ndarray]:
    """(alphas, log Z(alpha)) on a grid over [ALPHA_LO, ALPHA_HI]."""
    alphas = np.linspace(ALPHA_LO, ALPHA_HI, GRID)
    logz = np.array([
        math.log(2.0 * quad(lambda x, a=a: math.exp(-_rho_np(x, a)), 0.0, math.inf, limit=200)[0])
        for a in alphas
    ])
    return alphas, logz


@functools.cache
def _log_partition_grid(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The table on a device, made once (not copied from host memory every batch)."""
    return torch.as_tensor(log_partition_table()[1], dtype=dtype, device=device)


def log_partition(alpha: torch.Tensor) -> torch.Tensor:
    grid = _log_partition_grid(alpha.dtype, alpha.device)
    t = (alpha - ALPHA_LO) / (ALPHA_HI - ALPHA_LO) * (GRID - 1)
    i0 = t.floor().clamp(0, GRID - 2)
    frac = t - i0
    i0 = i0.long()
    return grid[i0] * (1.0 - frac) + grid[i0 + 1] * frac


if TYPE_CHECKING:
    from core.training.config import TrainConfig


class Barron(Method):
    name = "barron"
    description = "Barron's adaptive robust loss (shape and scale learnt per dimension)"

    def __init__(self, problem: Problem, config: TrainConfig) -> None:
        super().__init__(problem, config)
        n_dims = problem.n_dims
        # alpha starts at 1 (pseudo-Huber), the scale at SCALE_INIT
        self.alpha_latent = torch.nn.Parameter(torch.zeros(n_dims))
        self.scale_latent = torch.nn.Parameter(
            torch.full((n_dims,), math.log(math.expm1(SCALE_INIT - SCALE_LO))))

    def alpha(self) -> torch.Tensor:
        return ALPHA_LO + (ALPHA_HI - ALPHA_LO) * torch.sigmoid(self.alpha_latent)

    def scale(self) -> torch.Tensor:
        return SCALE_LO + torch.nn.functional.softplus(self.scale_latent)

    def loss(self, out: Output, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        alpha, scale = self.alpha().float(), self.scale().float()
        nll = rho((target - out.mean).float() / scale, alpha) + torch.log(scale) + log_partition(alpha)
        return (weight * nll).sum(dim=1).mean()

    def metrics(self) -> dict[str, Any]:
        return {"alpha_median": float(self.alpha().detach().median()),
                "scale_median": float(self.scale().detach().median())}
