"""A tiny real landmark dataset for engine tests: coloured dots on noise, whose
centres are the landmarks, written as PNG files and imported into a project."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.images import content_hash
from core.project import LabelSchema, NewSample, Project

COLOURS = ((255, 40, 40), (40, 255, 40), (40, 40, 255), (255, 255, 40), (255, 40, 255))
SCHEMA = LabelSchema("landmarks", "dots", tuple(f"dot{i}" for i in range(len(COLOURS))))


def make_dots_project(folder: Path, n: int = 300, side: int = 48, seed: int = 0,
                      val_share: float = 0.1) -> Path:
    """A project of ``n`` images (``side`` px squares) holding one dot per keypoint."""
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        img = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
        pts = rng.uniform(0.15 * side, 0.85 * side, (len(COLOURS), 2))
        for (x, y), colour in zip(pts, COLOURS, strict=True):
            cv2.circle(img, (int(round(x * 4)), int(round(y * 4))), 8, colour, -1, cv2.LINE_AA,
                       shift=2)
        name = f"img{i:04d}.png"
        ok, buf = cv2.imencode(".png", img[:, :, ::-1])
        assert ok
        data = buf.tobytes()
        (images / name).write_bytes(data)
        split = "val" if i < val_share * n else "train"
        items.append(NewSample(name, f"images/{name}", side, side, content_hash(data),
                               points=pts, split=split))
    path = folder / "dots.gumshoe"
    with Project.create(path, SCHEMA) as project:
        source = project.add_source(folder, "synthetic", "landmarks")
        project.add_samples(source, items)
        project.complete_source(source)
    return path
