"""Outlier scores from a trained model's predictions, as rows for the project file.

Every method gives, per point (a landmark or the one age), the outlier log-odds of
the stored label (``Method.unit_log_odds``: a Gaussian-uniform mixture fitted on
the training samples' residuals, normalised by the predicted uncertainty where
the method has one, with an image-level layer for landmarks:
``core.robust.image_mixture.image_mixture``), and per sample the log-odds that its label
is wrong. ``landmark_scores`` are the points' log-odds, ``landmark_probs`` their
probability; a sample's ``score`` (the queue's ranking key, finite and free of
ties where probabilities would round to 1) is its log-odds and ``outlier_prob``
its probability. One rule for every method: a point or a sample is flagged at
probability > 0.5 (:func:`flags`, :func:`sample_flagged`).

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


def sample_flagged(score: float | None) -> bool:
    """Whether a sample's label is called wrong: its log-odds (the row's ``score``)
    above 0, i.e. a probability over one half."""
    return score is not None and not math.isnan(score) and score > 0.0


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


def score_rows(data: TrainData, preds: Predictions, method: Method,
               shown: Predictions | None = None) -> list[ScoreRow]:
    """A row for every sample with a label: scores judged on ``preds``, and the
    prediction and its uncertainty (the predicted scale per point where the method
    has one, else the flip spread per dimension) of ``shown`` (default ``preds``;
    cross-fitting judges out-of-fold predictions and shows the final model's), in
    original image pixels, or years."""
    res = data.targets - preds.mean
    shown = preds if shown is None else shown
    units = method.unit_log_odds(res, preds.log_scale, data.mask, data.train, data.reviewed,
                                 data.targets)
    from core.issues import name_issues

    sample = units.sample_log_odds if units.sample_log_odds is not None else \
        np.nanmax(np.where(np.isfinite(units.log_odds), units.log_odds, -np.inf), axis=1)
    issues = name_issues(data.targets, preds.mean, data.mask, units.log_odds, sample,
                         units.swap_log_odds, preds.log_scale, data.train, data.task)
    size = data.images.size
    rows: list[ScoreRow] = []
    for i, sid in enumerate(data.ids):
        u = units.log_odds[i]
        if not np.isfinite(u).any():
            continue  # nothing labelled to judge
        score = float(np.nanmax(u) if units.sample_log_odds is None else units.sample_log_odds[i])
        prob = float(expit(score))
        statistic = float(np.nanmax(units.statistic[i]))
        lb = data.letterboxes[i]
        if data.task == "landmarks":
            cache = (shown.mean[i].reshape(-1, 2) + 1.0) / 2.0 * size - 0.5
            prediction = lb.to_image(cache).reshape(-1).tolist()
            if shown.log_scale is not None:
                std = (np.exp(shown.log_scale[i]) * size / 2.0 / lb.scale).tolist()
            else:
                std = None if shown.spread is None else \
                    (shown.spread[i] * size / 2.0 / lb.scale).tolist()
            rows.append(ScoreRow(int(sid), score, prob, u.tolist(), expit(u).tolist(),
                                 prediction, std, issues[i], statistic))
        else:
            assert data.age_range is not None
            lo, hi = data.age_range
            half = (hi - lo) / 2.0
            age = lo + (shown.mean[i, 0] + 1.0) * half
            if shown.log_scale is not None:
                std = [float(np.exp(shown.log_scale[i, 0]) * half)]
            else:
                std = None if shown.spread is None else [float(shown.spread[i, 0] * half)]
            rows.append(ScoreRow(int(sid), score, prob, None, None, [float(age)], std,
                                 issues[i], statistic))
    return rows
