"""Backbones and heads. The default backbone is :class:`~core.models.cnn.SmallCNN`,
trained from scratch; torchvision ResNets can be used instead when torchvision is
installed and the user has their weights file locally (nothing is downloaded)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from core.models.cnn import SmallCNN

BACKBONES = ("cnn", "resnet18", "resnet34")


INITIAL_LOG_SCALE = math.log(0.05)  # a few per cent of the input square


class Regressor(nn.Module):
    """Backbone + MLP head with ``n_outputs`` normalised outputs, then ``n_scales``
    log scales (the uncertainty of each point, for methods that predict one).

    Landmarks: 2K outputs, (x, y) of each keypoint in the input square mapped to
    [-1, 1]. Age: one output, the label range mapped to [-1, 1]."""

    def __init__(self, backbone: nn.Module, features: int, n_outputs: int,
                 hidden: int = 256, dropout: float = 0.1, n_scales: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.n_outputs, self.n_scales = n_outputs, n_scales
        self.head = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )
        # the uncertainty head reads the backbone's features without training them:
        # its likelihood's gradients would otherwise compete with the mean's
        self.scale_head = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_scales),
        ) if n_scales else None

    def init_output(self, mean_target: torch.Tensor) -> None:
        """Start the head at the mean target (the mean shape) and every scale at
        :data:`INITIAL_LOG_SCALE`: faster, steadier training."""
        with torch.no_grad():
            for head, bias in ((self.head, mean_target), (self.scale_head, None)):
                if head is None:
                    continue
                last = head[-1]
                assert isinstance(last, nn.Linear)
                last.weight.mul_(0.1)
                if bias is None:
                    last.bias.fill_(INITIAL_LOG_SCALE)
                else:
                    last.bias.copy_(bias.to(last.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs + n_scales): the means, then the log scales."""
        feat = self.backbone(x)
        mean = self.head(feat)
        if self.scale_head is None:
            return mean
        return torch.cat([mean, self.scale_head(feat.detach())], dim=1)


def _torchvision_backbone(name: str, weights: Path | None) -> tuple[nn.Module, int]:
    try:
        import torchvision
    except ImportError:
        raise ValueError(f"backbone {name!r} needs torchvision, which is not installed") from None
    net = getattr(torchvision.models, name)(weights=None)
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
            raise ValueError(f"{weights}: not {name} weights ({type(exc).__name__})") from None
    features = net.fc.in_features
    net.fc = nn.Identity()
    return net, features


def build_model(n_outputs: int, backbone: str = "cnn", image_size: int = 64,
                weights: str | Path | None = None, n_scales: int = 0) -> Regressor:
    """The regressor for ``n_outputs`` targets (and ``n_scales`` log scales).
    ``weights`` (torchvision backbones only) is a local state-dict file of ImageNet
    weights."""
    if backbone == "cnn":
        if weights is not None:
            raise ValueError("the built-in cnn backbone trains from scratch: it takes no weights")
        net = SmallCNN(image_size)
        return Regressor(net, net.out_features, n_outputs, n_scales=n_scales)
    if backbone in ("resnet18", "resnet34"):
        net, features = _torchvision_backbone(backbone, None if weights is None else Path(weights))
        return Regressor(net, features, n_outputs, n_scales=n_scales)
    raise ValueError(f"unknown backbone {backbone!r} (expected one of {', '.join(BACKBONES)})")
