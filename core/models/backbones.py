"""Backbones other than the built-in CNN: torchvision ResNets and any timm model,
with ImageNet weights from a local file (nothing is ever downloaded).

Both libraries are optional: they are imported when such a backbone is asked for,
and an install where they cannot load (a torchvision built for another torch
build, say) gets one line saying so instead of a traceback. A backbone here is
an ``nn.Module`` with ``pyramid(x)`` (feature maps at strides 4, 8, 16, 32),
``channels`` (theirs), ``forward(x)`` (globally pooled features,
``out_features`` of them), and the ImageNet ``mean``/``std`` its weights expect.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION = ("resnet18", "resnet34", "resnet50")


def _import(name: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ValueError(f"{purpose} needs {name}, which is not installed "
                         f"(pip install {name})") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a torchvision built for another torch
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{purpose} needs {name}, which is installed but does not load "
                         f"with torch {torch.__version__} ({first}); install the {name} "
                         "build that matches your torch") from None


def _load_weights(net: nn.Module, weights: Path, name: str) -> None:
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise ValueError(f"{weights}: not {name} weights ({type(exc).__name__}: {first})") from None


class TorchvisionResNet(nn.Module):
    pooled = True

    def __init__(self, name: str, weights: Path | None) -> None:
        super().__init__()
        tv = _import("torchvision", f"backbone {name!r}")
        net = getattr(tv.models, name)(weights=None)
        if weights is not None:
            _load_weights(net, weights, name)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.channels = [int(net.fc.in_features) // 2 ** (3 - i) for i in range(4)]
        self.out_features = int(net.fc.in_features)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        maps = []
        for layer in self.layers:
            x = layer(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pyramid(x)[-1].mean(dim=(2, 3))


class TimmBackbone(nn.Module):
    pooled = True

    def __init__(self, name: str, weights: Path | None) -> None:
        super().__init__()
        timm = _import("timm", f"backbone timm:{name}")
        kwargs: dict[str, Any] = {"features_only": True, "out_indices": (1, 2, 3, 4)}
        if weights is not None:
            if not weights.is_file():
                raise ValueError(f"{weights}: no such weights file")
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
        try:
            self.net = timm.create_model(name, **kwargs)
        except Exception as exc:  # noqa: BLE001 - unknown names, bad files
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise ValueError(f"timm backbone {name!r}: {type(exc).__name__}: {first}") from None
        self.channels = list(self.net.feature_info.channels())
        self.out_features = self.channels[-1]
        cfg = getattr(self.net, "pretrained_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(cfg.get("std", IMAGENET_STD))

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pyramid(x)[-1].mean(dim=(2, 3))


def external_backbone(name: str, weights: Path | None) -> nn.Module:
    """``resnet18``/``resnet34``/``resnet50`` (torchvision) or ``timm:NAME``."""
    if name in TORCHVISION:
        return TorchvisionResNet(name, weights)
    if name.startswith("timm:") and len(name) > 5:
        return TimmBackbone(name[5:], weights)
    raise ValueError(f"unknown backbone {name!r} (expected cnn, {', '.join(TORCHVISION)} "
                     "or timm:NAME)")
