"""The criterion interface shared by DeepGUM and the baselines."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from core.robust.deepgum import EMResult


class Criterion:
    """The base: plain per-dimension weights (ones) and no state between epochs."""

    name = "base"

    def __init__(self, n_dims: int) -> None:
        self.n_dims = n_dims

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learnable parameters of the loss itself (Barron's alpha and scale)."""
        return []

    def weights(self, index: np.ndarray) -> np.ndarray:
        """(B, D) float32 per-dimension weights of training samples ``index``."""
        return np.ones((len(index), self.n_dims), dtype=np.float32)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, res: np.ndarray, mask: np.ndarray, iterations: int = 1,
            should_stop: Callable[[], bool] | None = None) -> EMResult | None:
        """Update state from the training residuals (N, D); None when there is none."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def batch_sigma(res: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-dimension robust scale 1.4826 * MAD of a batch's residuals (detached),
    ignoring missing labels (weight 0)."""
    r = res.detach().float().masked_fill(weight <= 0, float("nan"))
    med = torch.nanmedian(r, dim=0).values
    mad = torch.nanmedian((r - med).abs(), dim=0).values
    return torch.nan_to_num(1.4826 * mad, nan=1.0).clamp_min(1e-4)



def scaled_rho_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                    rho: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """mean_n sum_d w_nd sigma_d^2 rho((y_nd - f_nd) / sigma_d), sigma the batch's
    per-dimension MAD scale: a robust loss on standardised residuals, scaled back so
    its inlier part is (y - f)^2 / 2 whatever the units (Huber and Tukey)."""
    res = target - pred
    sigma = batch_sigma(res, weight)
    return (weight * rho(res / sigma) * sigma**2).sum(dim=1).mean()
