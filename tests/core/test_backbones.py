"""Backbones from torchvision and timm with ImageNet weights from a local file.

Both libraries are optional. Where they are not installed, or cannot load beside
this torch (CI pins the CPU torch, and PyPI's torchvision is built for another),
these tests skip and say why; run them in an environment that has them
(``pip install torch torchvision timm``)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from core.models import build_model
from core.project import Project
from core.training import TrainConfig, train
from tests.core.synth import make_dots_project


def _needs(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - ImportError, or a build for another torch
        pytest.skip(f"{name} does not load here ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:100] if str(exc) else ''})")


def test_resnet18_loads_local_weights_and_normalises_like_imagenet(tmp_path: Path) -> None:
    tv = _needs("torchvision")
    torch.manual_seed(0)
    reference = tv.models.resnet18(weights=None)
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    model = build_model(10, "resnet18", 64, weights=weights, head="heatmap")
    loaded = dict(model.named_parameters())
    conv = next(v for k, v in loaded.items() if k.endswith("stem.0.weight"))
    assert torch.equal(conv, reference.conv1.weight)  # the file's weights, not a fresh init
    assert model(torch.rand(2, 3, 64, 64)).shape[:2] == (2, 10)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not resnet18 weights"):
        build_model(10, "resnet18", 64, weights=tmp_path / "bad.pth")


def test_timm_backbone_from_a_local_file(tmp_path: Path) -> None:
    timm = _needs("timm")
    reference = timm.create_model("resnet10t", pretrained=False)
    weights = tmp_path / "resnet10t.pth"
    torch.save(reference.state_dict(), weights)
    model = build_model(6, "timm:resnet10t", 64, weights=weights)
    assert model(torch.rand(2, 3, 64, 64)).shape[:2] == (2, 6)
    with pytest.raises(ValueError, match="no such weights file"):
        build_model(6, "timm:resnet10t", 64, weights=tmp_path / "missing.pth")


def test_a_run_trains_and_scores_with_a_resnet(tmp_path: Path) -> None:
    tv = _needs("torchvision")
    weights = tmp_path / "resnet18.pth"
    torch.save(tv.models.resnet18(weights=None).state_dict(), weights)
    path = make_dots_project(tmp_path, n=40, side=64)
    run = train(path, TrainConfig(epochs=1, image_size=64, batch_size=8, backbone="resnet18",
                                  weights=str(weights)))
    with Project.open(path) as p:
        assert p.run(run).status == "finished" and len(p.scores(run)) == 40
