"""Training-time augmentation on the device: a random flip (keypoints exchanged by
the schema's flip pairs) and a similarity jitter (scale, rotation, translation),
the landmark targets and their weights moved with the image; and the exact inverse
map of a residual back to the label frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.training.config import TrainConfig
from core.training.data import TrainData


def flip_outputs(pred: torch.Tensor, perm: np.ndarray | None, task: str,
                 perm_device: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs for a mirrored image, mapped back to the unmirrored frame
    (``perm_device``: ``perm`` already on the outputs' device)."""
    if task != "landmarks":
        return pred
    p = pred.view(pred.shape[0], -1, 2)
    if perm is not None:
        p = p[:, perm_device if perm_device is not None else torch.as_tensor(perm, device=pred.device)]
    return torch.stack([-p[..., 0], p[..., 1]], dim=-1).reshape(pred.shape)


@dataclass(frozen=True)
class Jitter:
    """The random draws of a batch (host tensors, from the run's generator): a flip,
    a scale, a rotation and a shift per sample. Drawn for the whole global batch on
    every rank of a distributed run, each applying its own rows (:meth:`rows`), so
    a sample is augmented alike whatever the number of processes."""

    flip: torch.Tensor  # (B,) bool
    scale: torch.Tensor  # (B,)
    angle: torch.Tensor  # (B,) radians
    shift: torch.Tensor  # (B, 2) normalised units

    def rows(self, lo: int, hi: int) -> Jitter:
        return Jitter(self.flip[lo:hi], self.scale[lo:hi], self.angle[lo:hi], self.shift[lo:hi])


@dataclass(frozen=True)
class Augmentation:
    """What :func:`augment` did to a batch: the label map is y_aug = A^-1 (y - t)
    after the flip's keypoint permutation, so a residual in the augmented frame
    maps back to the label frame as A r (then the permutation undone)."""

    a: torch.Tensor  # (B, 2, 2), on the batch's device
    flip: torch.Tensor  # (B,) bool, on the host
    flip_device: torch.Tensor | None = None  # the same on the batch's device


def draw_jitter(b: int, cfg: TrainConfig, data: TrainData, gen: torch.Generator) -> Jitter:
    """The random draws for a batch of ``b`` samples (in a fixed order: the flips,
    scales, angles, then shifts)."""
    landmarks = data.task == "landmarks"
    can_flip = cfg.flip and (not landmarks or data.flip_perm is not None)
    flip = (torch.rand(b, generator=gen) < 0.5) if can_flip else torch.zeros(b, dtype=torch.bool)
    scale = 1.0 + (torch.rand(b, generator=gen) * 2 - 1) * cfg.scale_jitter
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(cfg.rotate_jitter)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 * cfg.shift_jitter)
    return Jitter(flip, scale, angle, shift)


def augment(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, cfg: TrainConfig,
            data: TrainData, gen: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Augmentation]:
    """Random flip and similarity jitter of a batch; landmark targets (and their
    weights) move with the image. x (B, 3, S, S) float, y and w (B, D) normalised."""
    return apply_jitter(x, y, w, draw_jitter(x.shape[0], cfg, data, gen), data)


def _host_maps(jitter: Jitter) -> torch.Tensor:
    """(B, 11) on the host: A (4), the shift t (2), A^-1 (4) and the flip (1), where
    p_in = A p_out + t maps an output position to the input it samples (normalised
    coordinates, x then y) and A = s R(angle) diag(fx, 1)."""
    b = jitter.flip.shape[0]
    fx = torch.where(jitter.flip, -1.0, 1.0)
    cos, sin = torch.cos(jitter.angle), torch.sin(jitter.angle)
    s = jitter.scale
    a = torch.stack([torch.stack([s * cos * fx, -s * sin], -1),
                     torch.stack([s * sin * fx, s * cos], -1)], 1)  # (B, 2, 2)
    # A^-1 = diag(fx, 1) R(-angle) / s, in closed form
    a_inv = torch.stack([torch.stack([fx * cos / s, fx * sin / s], -1),
                         torch.stack([-sin / s, cos / s], -1)], 1)
    return torch.cat([a.reshape(b, 4), jitter.shift, a_inv.reshape(b, 4),
                      jitter.flip.to(a.dtype)[:, None]], dim=1)


def _move_labels(y: torch.Tensor, w: torch.Tensor, packed: torch.Tensor, flip: torch.Tensor,
                 data: TrainData, perm: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, Augmentation]:
    """The landmark targets (and weights) moved with the image: y_aug = A^-1 (y - t),
    after the flip's keypoint permutation."""
    b, dev = y.shape[0], y.device
    a_dev, shift, a_inv_dev = packed[:, 0:4].view(b, 2, 2), packed[:, 4:6], packed[:, 6:10].view(b, 2, 2)
    if data.task == "landmarks":
        if bool(flip.any()):
            if perm is None:
                perm = torch.as_tensor(data.flip_perm).to(dev, non_blocking=True)
            fi = packed[:, 10] > 0.5
            yv, wv = y.view(b, -1, 2), w.view(b, -1, 2)
            yv = torch.where(fi[:, None, None], yv[:, perm], yv)
            wv = torch.where(fi[:, None, None], wv[:, perm], wv)
            y, w = yv.reshape(b, -1), wv.reshape(b, -1)
        p = y.view(b, -1, 2) - shift.to(y.dtype)[:, None, :]
        y = torch.einsum("bij,bkj->bki", a_inv_dev.to(y.dtype), p).reshape(b, -1)
    return y, w, Augmentation(a_dev, flip, packed[:, 10] > 0.5)


def apply_jitter(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, jitter: Jitter,
                 data: TrainData, perm: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Augmentation]:
    """:func:`augment` with the draws given. The draws reach the device in one
    non-blocking copy (no host synchronisation); ``perm``: the flip permutation
    already on the device (else copied here)."""
    b = x.shape[0]
    packed = _host_maps(jitter).to(x.device, non_blocking=True)
    theta = torch.cat([packed[:, 0:4].view(b, 2, 2), packed[:, 4:6, None]], dim=2).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y, w, aug = _move_labels(y, w, packed, jitter.flip, data, perm)
    return x.contiguous(memory_format=torch.channels_last), y, w, aug


# the uint8 value that the network's input reads as 0 (x / 255 - 0.5): the border
# the float warp fills with zeros
_BORDER = 128


def warp_rows(images: torch.Tensor, y: torch.Tensor, w: torch.Tensor, jitter: Jitter,
              data: TrainData, perm: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Augmentation]:
    """:func:`apply_jitter` on the host rows before they become the network's input:
    ``images`` (B, S, S, 3) uint8 on the CPU, each warped by OpenCV with the same
    bilinear map (a quarter of ``grid_sample``'s time on a CPU at 128 px, where the
    jitter was the trainer's largest cost beside the model). The labels move exactly
    as there; the image differs from the float warp by OpenCV's interpolation
    rounding only (under 1/255 with OpenCV 5; OpenCV 4 rounds positions to 1/32 px)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"warp_rows takes (B, S, S, 3) uint8 rows, not {tuple(images.shape)} "
                         f"{images.dtype}")
    b, side = images.shape[0], images.shape[1]
    packed = _host_maps(jitter)
    a, t = packed[:, 0:4].view(b, 2, 2).double().numpy(), packed[:, 4:6].double().numpy()
    # normalised (align_corners=False) -> pixel centres: i = ((u + 1) S - 1) / 2, so
    # i_in = A i_out + ((I - A)(S - 1) 1 + S t) / 2
    ones = np.ones(2)
    out = np.empty(tuple(images.shape), np.uint8)
    src = images.numpy()
    for i in range(b):
        c = ((np.eye(2) - a[i]) @ ones * (side - 1) + side * t[i]) / 2.0
        m = np.hstack([a[i], c[:, None]])
        cv2.warpAffine(src[i], m, (side, side), dst=out[i],
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(_BORDER,) * 3)
    y, w, aug = _move_labels(y, w, packed.to(y.device), jitter.flip, data, perm)
    return torch.from_numpy(out), y, w, aug


def unaugment_residuals(res: torch.Tensor, aug: Augmentation, data: TrainData,
                        perm: torch.Tensor | None = None) -> torch.Tensor:
    """Residuals y_aug - f(x_aug) of an augmented batch (B, D), mapped back to the
    label frame of the unaugmented sample (exact for a network that follows the
    image; ages are unchanged by the jitter). ``perm``: the flip permutation on the
    residuals' device, if already there."""
    if data.task != "landmarks":
        return res
    b = res.shape[0]
    r = torch.einsum("bij,bkj->bki", aug.a.to(res.device, res.dtype), res.view(b, -1, 2))
    if data.flip_perm is not None and bool(aug.flip.any()):
        if perm is None:
            perm = torch.as_tensor(data.flip_perm, device=res.device)
        fi = aug.flip_device if aug.flip_device is not None else aug.flip.to(res.device)
        r = torch.where(fi[:, None, None], r[:, perm], r)
    return r.reshape(b, -1)
