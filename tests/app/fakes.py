"""Small real projects for the GUI tests: images drawn with OpenCV on disk,
samples through Project.add_samples, and (optionally) a run's scores written
with Project.write_scores, exactly as the trainer would."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from core.images import content_hash
from core.project import LabelSchema, NewSample, Project, ScoreRow

K = 5
SCHEMA = LabelSchema(task="landmarks", name="face5",
                     keypoints=("right_eye", "left_eye", "nose", "mouth_right", "mouth_left"),
                     flip_pairs=((0, 1), (3, 4)), skeleton=((0, 1), (0, 2), (1, 2), (2, 3),
                                                             (2, 4), (3, 4)))


def _face(rng: np.random.Generator, size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((size, size, 3), (40, 40, 48), np.uint8)
    cx, cy = size / 2 + rng.normal(0, 6), size / 2 + rng.normal(0, 6)
    cv2.ellipse(img, (int(cx), int(cy)), (50, 62), 0, 0, 360, (150, 180, 210), -1)
    pts = np.array([[cx - 20, cy - 15], [cx + 20, cy - 15], [cx, cy + 5],
                    [cx - 16, cy + 28], [cx + 16, cy + 28]], dtype=np.float64)
    for x, y in pts[:2]:
        cv2.circle(img, (int(x), int(y)), 6, (60, 50, 40), -1)
    cv2.line(img, (int(pts[3, 0]), int(pts[3, 1])), (int(pts[4, 0]), int(pts[4, 1])),
             (60, 60, 160), 3)
    return img, pts


def make_project(path: Path, n: int = 40, scored: bool = True, task: str = "landmarks",
                 seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    img_dir = path.parent / (path.stem + "-images")
    img_dir.mkdir(parents=True, exist_ok=True)
    schema = SCHEMA if task == "landmarks" else LabelSchema(task="age", name="age")
    proj = Project.create(path, schema)
    src = proj.add_source(img_dir, "test", task)
    samples, truth = [], []
    for i in range(n):
        img, pts = _face(rng)
        name = f"face_{i:03d}.png"
        cv2.imwrite(str(img_dir / name), img)
        digest = content_hash((img_dir / name).read_bytes())  # the cache checks it
        stored = pts.copy()
        if i % 5 == 0:  # a wrong label on every fifth face: the nose is far off
            stored[2] += (35.0, -30.0)
        truth.append(pts)
        age = float(20 + i % 50)
        samples.append(NewSample(key=name, path=name, width=160, height=160, content_hash=digest,
                                 points=stored if task == "landmarks" else None,
                                 age=None if task == "landmarks" else age,
                                 split="val" if i % 10 == 9 else "train"))
    ids = proj.add_samples(src, samples)
    if scored:
        run = proj.create_run("deepgum", {"epochs": 2})
        rows = []
        for sid, s, pts in zip(ids, samples, truth, strict=True):
            if task == "landmarks":
                d = np.linalg.norm(s.points - pts, axis=1)
                lms = [float(v / 3.0 - 2.0) for v in d]
                probs = [1 / (1 + math.exp(-v)) for v in lms]
                rows.append(ScoreRow(sid, max(lms), max(probs), lms, probs,
                                     prediction=list(pts.reshape(-1)), prediction_std=None))
            else:
                rows.append(ScoreRow(sid, float(rng.normal()), 0.3, prediction=[s.age + 3.0],
                                     prediction_std=[2.5]))
        proj.write_scores(run, rows)
        proj.update_run(run, status="finished")
    proj.close()
    return path
