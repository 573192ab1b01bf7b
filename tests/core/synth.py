"""A tiny real landmark dataset for engine tests: a filled ellipse on noise whose
leftmost, rightmost, top and bottom points are the landmarks (left and right are a
flip pair), written as PNG files (and as a CSV source or a project)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.images import content_hash
from core.project import LabelSchema, NewSample, Project

SCHEMA = LabelSchema("landmarks", "ellipse", ("left", "right", "top", "bottom"),
                     flip_pairs=((0, 1),))


def draw_dots(folder: Path, n: int, side: int, seed: int) -> list[tuple[str, np.ndarray, bytes]]:
    """``n`` PNG images in ``folder/images``: (relative path, (4, 2) landmarks, file bytes)."""
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
        cx, cy = rng.uniform(0.35 * side, 0.65 * side, 2)
        ax, ay = rng.uniform(0.12 * side, 0.3 * side, 2)
        colour = tuple(int(c) for c in rng.integers(120, 256, 3))
        cv2.ellipse(img, (int(round(cx * 16)), int(round(cy * 16))),
                    (int(round(ax * 16)), int(round(ay * 16))), 0, 0, 360, colour, -1,
                    cv2.LINE_AA, shift=4)
        pts = np.array([[cx - ax, cy], [cx + ax, cy], [cx, cy - ay], [cx, cy + ay]])
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
        assert ok
        name = f"images/img{i:04d}.png"
        (folder / name).write_bytes(buf.tobytes())
        out.append((name, pts, buf.tobytes()))
    return out


def make_dots_project(folder: Path, n: int = 300, side: int = 48, seed: int = 0,
                      val_share: float = 0.1) -> Path:
    """A project of ``n`` ellipse images; the first
    ``val_share`` of them in the val split."""
    items = [NewSample(name, name, side, side, content_hash(data), points=pts,
                       split="val" if i < val_share * n else "train")
             for i, (name, pts, data) in enumerate(draw_dots(folder, n, side, seed))]
    path = folder / "ellipses.gumshoe"
    with Project.create(path, SCHEMA) as project:
        source = project.add_source(folder, "synthetic", "landmarks")
        project.add_samples(source, items)
        project.complete_source(source)
    return path


def write_dots_csv(folder: Path, n: int = 200, side: int = 48, seed: int = 0) -> Path:
    """The same kind of dataset as a CSV source (``--format csv``)."""
    rows = ["image," + ",".join(f"x{k},y{k}" for k in range(SCHEMA.n_keypoints))]
    for name, pts, _ in draw_dots(folder, n, side, seed):
        rows.append(name + "," + ",".join(f"{v:.3f}" for v in pts.reshape(-1)))
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path
