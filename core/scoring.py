"""Outlier scores from a trained model's predictions, as rows for the project file.

Every method gives, per point (a landmark or the one age), the outlier log-odds of
the stored label (``Method.unit_log_odds``: a Gaussian-uniform mixture fitted on
the training samples' residuals, normalised by the predicted uncertainty where
the method has one). ``landmark_scores`` are those log-odds, ``landmark_probs``
their probability; a sample's ``score`` (the queue's ranking key, finite and
free of ties where probabilities would round to 1) is its worst point's and
``outlier_prob`` its probability. A landmark is flagged at probability > 0.5, an
image by the family-wise rule of :func:`image_threshold`.

``outre_scores`` is the OUTRE score of cleanlab's regression module, written
out here: the labels and the residuals standardised, the residuals weighted 5x,
and each sample scored by its mean distance to its nearest half of the samples
in that plane (a label far from the bulk of (label, residual) pairs is suspect).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import expit

from core.project import ScoreRow

if TYPE_CHECKING:
    from core.robust.base import Method
    from core.training.data import TrainData
    from core.training.predict import Predictions

OUTRE_RESIDUAL_SCALE = 5.0
OUTRE_NEIGHBOURS = 0.5


def flags(scores: np.ndarray) -> np.ndarray:
    """Which points are called wrong: log-odds > 0 (probability > 0.5)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    return s > 0.0


def image_threshold(n_units: int) -> float:
    """The log-odds a sample's worst unit must pass for the *image* to be flagged:
    ``log(2K - 1)`` for K judged units, i.e. worst outlier probability above
    ``1 - 1/(2K)``. Each landmark is flagged on its own at r < 0.5, but with 68 of
    them a clean face whose hardest point the network places badly would be called
    wrong too often; this family-wise bound keeps the expected number of falsely
    flagged landmarks of a clean image under one half. One unit (an age): r < 0.5."""
    return math.log(max(2 * n_units - 1, 1))


def image_flagged(unit_scores: np.ndarray | list[float | None]) -> bool:
    """Whether a sample's label is called wrong, from its per-unit log-odds
    (landmarks, or the one age), by :func:`image_threshold`."""
    s = np.array([np.nan if v is None else v for v in unit_scores], dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return False
    return bool(s.max() > image_threshold(len(s)))


def outre_scores(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """OUTRE outlier score per sample (higher = more likely wrong)."""
    y = np.asarray(labels, dtype=np.float64)
    r = np.asarray(predictions, dtype=np.float64) - y

    def standardise(v: np.ndarray) -> np.ndarray:
        sd = v.std()
        return (v - v.mean()) / (sd if sd > 0 else 1.0)

    pts = np.stack([standardise(y), OUTRE_RESIDUAL_SCALE * standardise(r)], axis=1)
    k = max(1, min(len(y) - 1, math.ceil(OUTRE_NEIGHBOURS * len(y))))
    dist, _ = cKDTree(pts).query(pts, k=k + 1)  # the first neighbour is the point itself
    return dist[:, 1:].mean(axis=1)


def score_rows(data: TrainData, preds: Predictions, method: Method) -> list[ScoreRow]:
    """A row for every sample with a label: scores, and the prediction and its
    uncertainty (the predicted scale per point where the method has one, else the
    flip spread per dimension) in original image pixels, or years."""
    res = data.targets - preds.mean
    units = method.unit_log_odds(res, preds.log_scale, data.mask, data.train, data.reviewed)
    size = data.images.size
    rows: list[ScoreRow] = []
    for i, sid in enumerate(data.ids):
        u = units.log_odds[i]
        if not np.isfinite(u).any():
            continue  # nothing labelled to judge
        score = float(np.nanmax(u))
        prob = float(expit(score))
        lb = data.letterboxes[i]
        if data.task == "landmarks":
            cache = (preds.mean[i].reshape(-1, 2) + 1.0) / 2.0 * size - 0.5
            prediction = lb.to_image(cache).reshape(-1).tolist()
            if preds.log_scale is not None:
                std = (np.exp(preds.log_scale[i]) * size / 2.0 / lb.scale).tolist()
            else:
                std = None if preds.spread is None else \
                    (preds.spread[i] * size / 2.0 / lb.scale).tolist()
            rows.append(ScoreRow(int(sid), score, prob, u.tolist(), expit(u).tolist(),
                                 prediction, std))
        else:
            assert data.age_range is not None
            lo, hi = data.age_range
            half = (hi - lo) / 2.0
            age = lo + (preds.mean[i, 0] + 1.0) * half
            if preds.log_scale is not None:
                std = [float(np.exp(preds.log_scale[i, 0]) * half)]
            else:
                std = None if preds.spread is None else [float(preds.spread[i, 0] * half)]
            rows.append(ScoreRow(int(sid), score, prob, None, None, [float(age)], std))
    return rows
