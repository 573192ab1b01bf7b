"""Backbones and heads. The default backbone is :class:`~core.models.cnn.SmallCNN`,
trained from scratch; torchvision ResNets can be used instead when torchvision is
installed and the user has their weights file locally (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.models.cnn import SmallCNN

BACKBONES = ("cnn", "resnet18", "resnet34")


class Regressor(nn.Module):
    """Backbone + linear head with ``n_outputs`` normalised outputs.

    Landmarks: 2K outputs, (x, y) of each keypoint in the input square mapped to
    [-1, 1]. Age: one output, the label range mapped to [-1, 1]."""

    def __init__(self, backbone: nn.Module, features: int, n_outputs: int,
                 hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )

    def init_output(self, mean_target: torch.Tensor) -> None:
        """Start the head at the mean target (the mean shape): faster, steadier training."""
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.copy_(mean_target.to(last.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


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
                weights: str | Path | None = None) -> Regressor:
    """The regressor for ``n_outputs`` targets. ``weights`` (torchvision backbones
    only) is a local state-dict file of ImageNet weights."""
    if backbone == "cnn":
        if weights is not None:
            raise ValueError("the built-in cnn backbone trains from scratch: it takes no weights")
        net = SmallCNN(image_size)
        return Regressor(net, net.out_features, n_outputs)
    if backbone in ("resnet18", "resnet34"):
        net, features = _torchvision_backbone(backbone, None if weights is None else Path(weights))
        return Regressor(net, features, n_outputs)
    raise ValueError(f"unknown backbone {backbone!r} (expected one of {', '.join(BACKBONES)})")
