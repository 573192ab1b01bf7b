"""Outlier scores from a trained model's residuals, as rows for the project file.

DeepGUM: the outlier log-odds ``log((1 - r) / r)`` per landmark (or per sample
for ages), from the fitted mixture, for landmarks with the inlier variances
of each image the network places closely tightened to match
(``GaussianUniformMixture.fit_sample_scales``); ``outlier_prob`` is ``1 - r``. A sample's
score (and ``outlier_prob``) is its worst landmark's; a landmark is flagged at
r < 0.5, an image by the family-wise rule of :func:`image_threshold`.

Baselines (no mixture): a landmark's residual length divided by the median
residual length of that landmark over the training samples (an age's absolute
residual by the median one), so landmarks that are harder to place do not
crowd the top of the queue. They have no probability; they are *flagged* when
the score exceeds :data:`BASELINE_FLAG` (3 times the typical residual).

``outre_scores`` is the OUTRE score of cleanlab's regression module, written
out here: the labels and the residuals standardised, the residuals weighted 5x,
and each sample scored by its mean distance to its nearest half of the samples
in that plane (a label far from the bulk of (label, residual) pairs is suspect).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import expit

from core.project import ScoreRow
from core.robust.base import Criterion
from core.robust.deepgum import DeepGUMCriterion, landmark_log_odds

if TYPE_CHECKING:
    from core.training import TrainData

BASELINE_FLAG = 3.0
OUTRE_RESIDUAL_SCALE = 5.0
OUTRE_NEIGHBOURS = 0.5


def residual_scores(res: np.ndarray, mask: np.ndarray, task: str,
                    reference: np.ndarray) -> np.ndarray:
    """Per landmark (N, K) (ages: (N, 1)) residual length over its median on the
    ``reference`` rows (the training samples); NaN where the label is missing."""
    if task == "landmarks":
        n = res.shape[0]
        e = np.sqrt((np.where(mask, res, 0.0).reshape(n, -1, 2) ** 2).sum(-1))
        m = mask.reshape(n, -1, 2)[..., 0]
    else:
        e, m = np.abs(np.where(mask, res, 0.0)), mask
    e = np.where(m, e, np.nan)
    ref = e[reference]
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(np.isfinite(ref), ref, np.nan), axis=0) if len(ref) else None
    med = np.ones(e.shape[1]) if med is None else np.where(np.isfinite(med) & (med > 0), med, 1.0)
    return e / med


def unit_scores(res: np.ndarray, mask: np.ndarray, task: str, scorer: Criterion,
                reference: np.ndarray) -> tuple[np.ndarray, bool]:
    """(scores per landmark or per age (N, K|1), whether they are log-odds).
    DeepGUM on landmarks with per-landmark or per-dimension units: the mixture
    with a per-image variance multiplier (see ``fit_sample_scales``) fitted on
    these residuals first; ``scorer`` is left as it was."""
    if isinstance(scorer, DeepGUMCriterion):
        mix = scorer.mixture
        if task == "landmarks":
            scale = None
            if mix.n_units > 1:
                mix = copy.deepcopy(mix)
                scale = mix.fit_sample_scales(res, mask, reference)
            return landmark_log_odds(mix, res, mask, scale=scale), True
        return mix.e_step(res, mask)[1], True
    return residual_scores(res, mask, task, reference), False


def flags(scores: np.ndarray, log_odds: bool) -> np.ndarray:
    """Which units a method calls wrong: r < 0.5 (log-odds > 0) for DeepGUM, a
    residual over :data:`BASELINE_FLAG` medians for the baselines."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    return s > 0.0 if log_odds else s > BASELINE_FLAG


def image_threshold(n_units: int) -> float:
    """The log-odds a sample's worst unit must pass for DeepGUM to flag the *image*:
    ``log(2K - 1)`` for K judged units, i.e. worst outlier probability above
    ``1 - 1/(2K)``. Each landmark is flagged on its own at r < 0.5, but with 68 of
    them a clean face whose hardest point the network places badly would be called
    wrong too often; this family-wise bound keeps the expected number of falsely
    flagged landmarks of a clean image under one half. One unit (an age): r < 0.5."""
    return math.log(max(2 * n_units - 1, 1))


def image_flagged(unit_scores: np.ndarray | list[float | None], log_odds: bool) -> bool:
    """Whether a method calls a sample's label wrong, from its per-unit scores
    (landmarks, or the one age): DeepGUM by :func:`image_threshold`, a baseline
    when any unit passes :data:`BASELINE_FLAG`."""
    s = np.array([np.nan if v is None else v for v in unit_scores], dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return False
    if log_odds:
        return bool(s.max() > image_threshold(len(s)))
    return bool(s.max() > BASELINE_FLAG)


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


def score_rows(data: TrainData, pred: np.ndarray, spread: np.ndarray | None,
               res: np.ndarray, scorer: Criterion) -> list[ScoreRow]:
    """A row for every sample with a label: scores, and the prediction (and its
    flip spread) in original image pixels, or years."""
    per_unit, log_odds = unit_scores(res, data.mask, data.task, scorer, data.train)
    size = data.images.size
    rows: list[ScoreRow] = []
    for i, sid in enumerate(data.ids):
        u = per_unit[i]
        if not np.isfinite(u).any():
            continue  # nothing labelled to judge
        score = float(np.nanmax(u))
        prob = float(expit(score)) if log_odds else None
        lb = data.letterboxes[i]
        if data.task == "landmarks":
            cache = (pred[i].reshape(-1, 2) + 1.0) / 2.0 * size - 0.5
            prediction = lb.to_image(cache).reshape(-1).tolist()
            std = None if spread is None else (spread[i] * size / 2.0 / lb.scale).tolist()
            rows.append(ScoreRow(int(sid), score, prob, u.tolist(),
                                 expit(u).tolist() if log_odds else None, prediction, std))
        else:
            assert data.age_range is not None
            lo, hi = data.age_range
            half = (hi - lo) / 2.0
            age = lo + (pred[i, 0] + 1.0) * half
            std = None if spread is None else [float(spread[i, 0] * half)]
            rows.append(ScoreRow(int(sid), score, prob, None, None, [float(age)], std))
    return rows
