"""The training data: every sample of a project, its image rows in the memory-mapped
cache and its current label as normalised targets.

Training uses samples of the ``train`` split that are not excluded and have a
label; ``val`` gives the validation error; ``test`` is never trained on or fitted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.images import CachedImages, ImageCache, Letterbox
from core.project import Project, ProjectError, Sample
from core.robust.base import Problem

StopFn = Callable[[], Any]  # truthy: pause; "stop": end the run (not resumable)
CACHE_WORKERS = 16  # decoding threads when the cache is built (a GPU box has the cores)


class TrainingStopped(Exception):
    """Raised inside the loop when ``should_stop`` says so; :func:`train` catches it."""


@dataclass
class TrainData:
    """Everything the loop needs, in memory: all samples of the project."""

    ids: np.ndarray  # (N,) sample ids
    samples: list[Sample]
    images: CachedImages  # (N, S, S, 3) uint8 rows, read from the memory-mapped cache per batch
    targets: np.ndarray  # (N, D) float32 normalised, 0 where missing
    mask: np.ndarray  # (N, D) bool
    letterboxes: list[Letterbox]
    train: np.ndarray  # indices into the arrays above
    val: np.ndarray
    task: str
    flip_perm: np.ndarray | None  # keypoint permutation for a mirrored image, or None
    age_range: tuple[float, float] | None
    errors: dict[int, str] = field(default_factory=dict)  # unreadable images (not used)
    # (N,) labels a reviewer confirmed or fixed: held as inliers when training
    reviewed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # a frontal schema's flip pairs, (image-left keypoint, partner); None otherwise
    frontal_pairs: tuple[tuple[int, int], ...] | None = None

    @property
    def n_dims(self) -> int:
        return self.targets.shape[1]

    @property
    def n_points(self) -> int:
        return self.n_dims // 2 if self.task == "landmarks" else 1

    @property
    def problem(self) -> Problem:
        perm = None if self.flip_perm is None else tuple(int(i) for i in self.flip_perm)
        return Problem(self.task, self.n_dims, self.n_points, perm, self.frontal_pairs)


def normalise_points(cache_points: np.ndarray, size: int) -> np.ndarray:
    """Cache pixel-centre coordinates -> [-1, 1] (grid_sample's align_corners=False)."""
    return (cache_points + 0.5) / size * 2.0 - 1.0


def denormalise_points(u: np.ndarray, size: int) -> np.ndarray:
    return (u + 1.0) / 2.0 * size - 0.5


def load_data(project: Project, size: int, on_progress: Callable[[int, int], None] | None = None,
              should_stop: StopFn | None = None) -> TrainData:
    """The project's samples and current labels, their images cached at ``size``
    (decoded where missing or stale). A packed project (``gumshoe pack``: its
    dataset's images did not travel) takes a cached row as it is wherever its
    content hash is the sample's."""
    schema = project.schema
    if schema is None:
        raise ProjectError(f"{project.path}: the project has no labels to train on")
    cache = ImageCache(project.cache_dir, size)
    all_samples = project.samples()
    todo = all_samples
    if project.meta("pack") is not None:
        todo = [s for s in all_samples if cache.content_hash(s.id) != s.content_hash]
    errors = cache.ensure(todo, on_progress, should_stop,
                          workers=max(2, min(CACHE_WORKERS, os.cpu_count() or 2)))
    if should_stop is not None and should_stop():
        raise TrainingStopped
    samples = [s for s in all_samples if s.id not in errors]
    labels = project.current_labels()
    lbs = [cache.transform(s) for s in samples]
    n = len(samples)
    if schema.task == "landmarks":
        k = schema.n_keypoints
        targets = np.zeros((n, 2 * k), np.float32)
        mask = np.zeros((n, 2 * k), bool)
        for i, (s, lb) in enumerate(zip(samples, lbs, strict=True)):
            lab = labels.get(s.id)
            if lab is None or lab.points is None:
                continue
            pts = lab.points
            ok = np.isfinite(pts).all(axis=1)
            if lab.visibility is not None:
                ok &= lab.visibility > 0
            u = normalise_points(lb.to_cache(np.where(ok[:, None], pts, 0.0)), size)
            targets[i] = np.where(ok[:, None], u, 0.0).reshape(-1)
            mask[i] = np.repeat(ok, 2)
        age_range = None
        perm = schema.flip_permutation() if schema.flip_pairs else None
    else:
        ages = np.array([np.nan if (lab := labels.get(s.id)) is None or lab.age is None
                         else lab.age for s in samples])
        finite = np.isfinite(ages)
        if not finite.any():
            raise ProjectError(f"{project.path}: no sample has an age")
        lo, hi = float(ages[finite].min()), float(ages[finite].max())
        hi = hi if hi > lo else lo + 1.0
        age_range = (lo, hi)
        targets = np.where(finite, (ages - lo) / (hi - lo) * 2.0 - 1.0, 0.0)[:, None].astype(np.float32)
        mask = finite[:, None].copy()
        perm = None
    split = np.array([s.split for s in samples])
    usable = np.array([s.review_status != "excluded" for s in samples]) & mask.any(axis=1)
    train_idx = np.flatnonzero(usable & (split == "train"))
    val_idx = np.flatnonzero(usable & (split == "val"))
    if len(train_idx) < 2:
        raise ProjectError(f"{project.path}: fewer than 2 labelled training samples")
    images = cache.reader([s.id for s in samples])
    reviewed = np.array([s.review_status in ("confirmed", "fixed") for s in samples], bool)
    frontal = tuple((int(a), int(b)) for a, b in schema.flip_pairs) \
        if schema.frontal and schema.flip_pairs else None
    return TrainData(np.array([s.id for s in samples], dtype=np.int64), samples, images, targets,
                     mask, lbs, train_idx, val_idx, schema.task, perm, age_range, errors,
                     reviewed, frontal)
