"""Models: a backbone and a head with ``n_outputs`` normalised outputs, then
``n_scales`` log scales (the uncertainty of each point, for methods that predict
one).

Backbones: the built-in :class:`~core.models.cnn.SmallCNN` (trained from
scratch, the default), torchvision ResNets or any timm model with ImageNet
weights from a local file (:mod:`core.models.backbones`). Heads:

- ``fc``: an MLP on the backbone's features (the CNN's last map flattened, so
  the head still sees where things are; others pooled);
- ``heatmap`` (landmarks): integral regression (Sun et al., ECCV 2018): a small
  feature pyramid brought to stride 4, one heatmap per landmark, and the
  soft-argmax of each as its (x, y), so every method's loss on coordinates
  trains it unchanged.

Landmarks: 2K outputs, (x, y) of each keypoint in the input square mapped to
[-1, 1]. Age: one output, the label range mapped to [-1, 1]. The uncertainty
head reads the backbone's features detached: its likelihood's gradients would
otherwise compete with the mean's in the shared layers.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.models.backbones import external_backbone
from core.models.cnn import SmallCNN

BACKBONES = ("cnn", "resnet18", "resnet34", "resnet50", "timm:NAME")
HEADS = ("fc", "heatmap")
INITIAL_LOG_SCALE = math.log(0.05)  # a few per cent of the input square
PYRAMID_WIDTH = 64


class Normalise(nn.Module):
    """[-0.5, 0.5] inputs (pixel / 255 - 0.5) -> the statistics pretrained weights expect."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([0.5 - m for m in mean]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([1.0 / s for s in std]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.shift) * self.scale


def _scale_head(features: int, hidden: int, n_scales: int) -> nn.Sequential | None:
    if not n_scales:
        return None
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, n_scales))


class Regressor(nn.Module):
    """Backbone + MLP head (see the module docstring)."""

    def __init__(self, backbone: nn.Module, features: int, n_outputs: int,
                 hidden: int = 256, dropout: float = 0.1, n_scales: int = 0,
                 normalise: Normalise | None = None) -> None:
        super().__init__()
        self.normalise = normalise
        self.backbone = backbone
        self.n_outputs, self.n_scales = n_outputs, n_scales
        self.head = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )
        self.scale_head = _scale_head(features, hidden, n_scales)

    def init_output(self, mean_target: torch.Tensor) -> None:
        """Start the head at the mean target (the mean shape) and every scale at
        :data:`INITIAL_LOG_SCALE`: faster, steadier training."""
        with torch.no_grad():
            last = self.head[-1]
            assert isinstance(last, nn.Linear)
            last.weight.mul_(0.1)
            last.bias.copy_(mean_target.to(last.bias))
        _init_scales(self.scale_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs + n_scales): the means, then the log scales."""
        if self.normalise is not None:
            x = self.normalise(x)
        feat = self.backbone(x)
        mean = self.head(feat)
        if self.scale_head is None:
            return mean
        return torch.cat([mean, self.scale_head(feat.detach())], dim=1)


def _init_scales(head: nn.Sequential | None) -> None:
    if head is None:
        return
    with torch.no_grad():
        last = head[-1]
        assert isinstance(last, nn.Linear)
        last.weight.mul_(0.1)
        last.bias.fill_(INITIAL_LOG_SCALE)


class IntegralRegressor(nn.Module):
    """Backbone pyramid -> stride-4 map -> one heatmap per landmark -> soft-argmax."""

    def __init__(self, backbone: nn.Module, n_outputs: int, n_scales: int = 0,
                 width: int = PYRAMID_WIDTH, hidden: int = 256,
                 normalise: Normalise | None = None) -> None:
        super().__init__()
        if n_outputs % 2:
            raise ValueError("the heatmap head predicts landmarks (x, y): not ages")
        self.normalise = normalise
        self.backbone = backbone
        self.n_outputs, self.n_scales = n_outputs, n_scales
        chans = list(backbone.channels)  # type: ignore[arg-type]
        self.lateral = nn.ModuleList([nn.Conv2d(c, width, 1) for c in chans])
        self.smooth = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.heatmaps = nn.Conv2d(width, n_outputs // 2, 1)
        self.scale_head = _scale_head(chans[-1], hidden, n_scales)

    def init_output(self, mean_target: torch.Tensor) -> None:
        """Flat heatmaps (every landmark starts at the centre) and the initial scales."""
        with torch.no_grad():
            self.heatmaps.weight.mul_(0.1)
            self.heatmaps.bias.zero_()
        _init_scales(self.scale_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise is not None:
            x = self.normalise(x)
        maps = self.backbone.pyramid(x)  # type: ignore[operator]
        top = self.lateral[-1](maps[-1])
        for lat, m in zip(reversed(self.lateral[:-1]), reversed(maps[:-1]), strict=True):
            top = F.interpolate(top, size=m.shape[-2:], mode="nearest") + lat(m)
        logits = self.heatmaps(self.smooth(top)).float()  # (B, K, H, W)
        b, k, h, w = logits.shape
        prob = torch.softmax(logits.reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
        xs = (torch.arange(w, device=x.device, dtype=prob.dtype) + 0.5) / w * 2 - 1
        ys = (torch.arange(h, device=x.device, dtype=prob.dtype) + 0.5) / h * 2 - 1
        px = (prob.sum(dim=2) * xs).sum(dim=-1)
        py = (prob.sum(dim=3) * ys).sum(dim=-1)
        mean = torch.stack([px, py], dim=-1).reshape(b, -1)
        if self.scale_head is None:
            return mean
        pooled = maps[-1].detach().float().mean(dim=(2, 3))
        return torch.cat([mean, self.scale_head(pooled)], dim=1)


Model = Regressor | IntegralRegressor


def build_model(n_outputs: int, backbone: str = "cnn", image_size: int = 64,
                weights: str | Path | None = None, n_scales: int = 0,
                head: str = "fc") -> Model:
    """The model for ``n_outputs`` targets (and ``n_scales`` log scales). ``weights``
    (other backbones than ``cnn``) is a local file of ImageNet weights."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r} (expected one of {', '.join(HEADS)})")
    normalise = None
    if backbone == "cnn":
        if weights is not None:
            raise ValueError("the built-in cnn backbone trains from scratch: it takes no weights")
        net: nn.Module = SmallCNN(image_size)
    else:
        net = external_backbone(backbone, None if weights is None else Path(weights))
        normalise = Normalise(net.mean, net.std)  # type: ignore[arg-type]
    if head == "heatmap":
        return IntegralRegressor(net, n_outputs, n_scales, normalise=normalise)
    return Regressor(net, int(net.out_features), n_outputs, n_scales=n_scales,  # type: ignore[arg-type]
                     normalise=normalise)
