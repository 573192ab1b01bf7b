"""Training-time augmentation on the device: a random flip (keypoints exchanged by
the schema's flip pairs) and a similarity jitter (scale, rotation, translation),
the landmark targets and their weights moved with the image; and the exact inverse
map of a residual back to the label frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.training.config import TrainConfig
from core.training.data import TrainData


def flip_outputs(pred: torch.Tensor, perm: np.ndarray | None, task: str) -> torch.Tensor:
    """Outputs for a mirrored image, mapped back to the unmirrored frame."""
    if task != "landmarks":
        return pred
    p = pred.view(pred.shape[0], -1, 2)
    if perm is not None:
        p = p[:, torch.as_tensor(perm, device=pred.device)]
    return torch.stack([-p[..., 0], p[..., 1]], dim=-1).reshape(pred.shape)


@dataclass(frozen=True)
class Augmentation:
    """What :func:`augment` did to a batch: the label map is y_aug = A^-1 (y - t)
    after the flip's keypoint permutation, so a residual in the augmented frame
    maps back to the label frame as A r (then the permutation undone)."""

    a: torch.Tensor  # (B, 2, 2)
    flip: torch.Tensor  # (B,) bool


def augment(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, cfg: TrainConfig,
            data: TrainData, gen: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Augmentation]:
    """Random flip and similarity jitter of a batch; landmark targets (and their
    weights) move with the image. x (B, 3, S, S) float, y and w (B, D) normalised."""
    b = x.shape[0]
    dev = x.device
    landmarks = data.task == "landmarks"
    can_flip = cfg.flip and (not landmarks or data.flip_perm is not None)
    flip = (torch.rand(b, generator=gen) < 0.5) if can_flip else torch.zeros(b, dtype=torch.bool)
    scale = 1.0 + (torch.rand(b, generator=gen) * 2 - 1) * cfg.scale_jitter
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(cfg.rotate_jitter)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 * cfg.shift_jitter)
    if landmarks and flip.any():
        perm = torch.as_tensor(data.flip_perm)
        fi = flip.to(dev)
        yv, wv = y.view(b, -1, 2), w.view(b, -1, 2)
        yv = torch.where(fi[:, None, None], yv[:, perm], yv)
        wv = torch.where(fi[:, None, None], wv[:, perm], wv)
        y, w = yv.reshape(b, -1), wv.reshape(b, -1)
    # output -> input sampling map: p_in = A p_out + t, A = s R(angle) diag(fx, 1)
    fx = torch.where(flip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a = torch.stack([torch.stack([scale * cos * fx, -scale * sin], -1),
                     torch.stack([scale * sin * fx, scale * cos], -1)], 1)  # (B, 2, 2)
    theta = torch.cat([a, shift[:, :, None]], dim=2).to(dev, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if landmarks:
        a_inv = torch.linalg.inv(a).to(dev, y.dtype)
        p = y.view(b, -1, 2) - shift.to(dev, y.dtype)[:, None, :]
        y = torch.einsum("bij,bkj->bki", a_inv, p).reshape(b, -1)
    return x.contiguous(memory_format=torch.channels_last), y, w, Augmentation(a, flip)


def unaugment_residuals(res: torch.Tensor, aug: Augmentation, data: TrainData) -> torch.Tensor:
    """Residuals y_aug - f(x_aug) of an augmented batch (B, D), mapped back to the
    label frame of the unaugmented sample (exact for a network that follows the
    image; ages are unchanged by the jitter)."""
    if data.task != "landmarks":
        return res
    b = res.shape[0]
    r = torch.einsum("bij,bkj->bki", aug.a.to(res.device, res.dtype), res.view(b, -1, 2))
    if data.flip_perm is not None and bool(aug.flip.any()):
        perm = torch.as_tensor(data.flip_perm, device=res.device)
        r = torch.where(aug.flip.to(res.device)[:, None, None], r[:, perm], r)
    return r.reshape(b, -1)
