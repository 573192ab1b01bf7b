"""A model's task error on some samples, and what a model that learnt nothing
from the images scores (the baseline of its skill, :mod:`core.skill`)."""

from __future__ import annotations

import numpy as np

from core.training.data import TrainData


def val_error(pred: np.ndarray, data: TrainData, index: np.ndarray) -> float | None:
    """Landmarks: mean point error as a share of the input square (the image or box
    size); age: mean absolute error in years."""
    if len(index) == 0:
        return None
    err = pred - data.targets[index]
    m = data.mask[index]
    if data.task == "landmarks":
        e = np.sqrt((err.reshape(len(index), -1, 2) ** 2).sum(-1)) / 2.0
        mk = m.reshape(len(index), -1, 2)[..., 0]
        return float(e[mk].mean()) if mk.any() else None
    assert data.age_range is not None
    lo, hi = data.age_range
    return float((np.abs(err[:, 0]) * (hi - lo) / 2.0)[m[:, 0]].mean())


def average_label(data: TrainData) -> np.ndarray:
    """The mean training target per dimension (labelled values only): where the
    model's output starts, and the baseline of its skill."""
    m = data.mask[data.train]
    return (data.targets[data.train] * m).sum(0) / np.maximum(m.sum(0), 1)


def average_label_error(data: TrainData, index: np.ndarray) -> float | None:
    """The :func:`val_error` of predicting the average training label for every
    sample at ``index``: what a model that learnt nothing from the images scores."""
    if len(index) == 0 or len(data.train) == 0:
        return None
    mean = average_label(data)
    return val_error(np.broadcast_to(mean, (len(index), len(mean))), data, index)
