"""Detection and task metrics for the benchmark (NumPy and SciPy only).

Detection: AUROC (ties count a half, as the Mann-Whitney statistic), AUPRC as
average precision (sklearn's definition: sum over thresholds of the precision
times the recall gained), precision and recall of a flag. Task: NME (point
error as a share of the image or box size), failure rate (share of points with
error above 5% of that size), MAE. Summaries: median with a seed range, and a
Wilcoxon signed-rank test on paired per-sample errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata, wilcoxon

FAILURE_THRESHOLD = 0.05
CALIBRATION_BINS = 10


def _clean(scores: Sequence[float] | np.ndarray,
           truth: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    if s.shape != t.shape:
        raise ValueError(f"{s.shape[0]} scores for {t.shape[0]} truth values")
    ok = ~np.isnan(s)
    return s[ok], t[ok]


def auroc(scores: Sequence[float] | np.ndarray, truth: Sequence[bool] | np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` (higher = outlier) against ``truth``;
    None when one class is absent. NaN scores are left out."""
    s, t = _clean(scores, truth)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)  # average ranks for ties; +-inf rank like any value
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(scores: Sequence[float] | np.ndarray, truth: Sequence[bool] | np.ndarray) -> float | None:
    """Average precision: sum_k (R_k - R_{k-1}) P_k over the distinct thresholds."""
    s, t = _clean(scores, truth)
    n_pos = int(t.sum())
    if n_pos == 0 or n_pos == len(t):
        return None
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    tp = np.cumsum(t)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each tie group
    tp = tp[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_recall(flagged: Sequence[bool] | np.ndarray,
                     truth: Sequence[bool] | np.ndarray) -> tuple[float | None, float | None]:
    """(precision, recall) of a set of flags; None where undefined (nothing flagged /
    no true outlier)."""
    f = np.asarray(flagged, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    tp = int((f & t).sum())
    precision = tp / int(f.sum()) if f.any() else None
    recall = tp / int(t.sum()) if t.any() else None
    return precision, recall


def reliability(probs: Sequence[float] | np.ndarray, truth: Sequence[bool] | np.ndarray,
                bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """The reliability diagram of probabilities ``probs`` that a label is wrong against
    ``truth``: for each of ``bins`` equal-width bins over [0, 1] that holds any, its
    edges, count, mean probability and the share truly wrong. NaN probabilities are
    left out."""
    p, t = _clean(probs, truth)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]),
                        "count": int(sel.sum()), "mean_prob": float(p[sel].mean()),
                        "wrong_share": float(t[sel].mean())})
    return out


def ece(probs: Sequence[float] | np.ndarray, truth: Sequence[bool] | np.ndarray,
        bins: int = CALIBRATION_BINS) -> float | None:
    """Expected calibration error: the count-weighted mean gap between each bin's mean
    probability and its share truly wrong (:func:`reliability`); None when empty."""
    rel = reliability(probs, truth, bins)
    n = sum(b["count"] for b in rel)
    if n == 0:
        return None
    return float(sum(b["count"] * abs(b["mean_prob"] - b["wrong_share"]) for b in rel) / n)


def point_errors(pred: np.ndarray, true: np.ndarray, size: np.ndarray | float) -> np.ndarray:
    """Per-point error (N, K) as a share of each sample's size; NaN where the truth is missing.
    pred and true (N, K, 2) in image pixels, size (N,) or a scalar."""
    e = np.sqrt(((np.asarray(pred, float) - np.asarray(true, float)) ** 2).sum(-1))
    return e / np.reshape(np.asarray(size, dtype=np.float64), (-1, 1))


def nme(errors: np.ndarray) -> float | None:
    """Mean of the finite per-point normalised errors."""
    e = np.asarray(errors, dtype=np.float64)
    e = e[np.isfinite(e)]
    return float(e.mean()) if e.size else None


def failure_rate(errors: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float | None:
    e = np.asarray(errors, dtype=np.float64)
    e = e[np.isfinite(e)]
    return float((e > threshold).mean()) if e.size else None


def mae(pred: np.ndarray, true: np.ndarray) -> float | None:
    d = np.abs(np.asarray(pred, np.float64) - np.asarray(true, np.float64))
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else None


def summarise(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and range (lowest, highest) over seeds; None values left out."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"median": None, "low": None, "high": None, "n": 0}
    return {"median": float(np.median(v)), "low": float(v.min()), "high": float(v.max()),
            "n": int(v.size)}


def paired_wilcoxon(a: np.ndarray, b: np.ndarray) -> dict[str, Any] | None:
    """Two-sided Wilcoxon signed-rank test of paired errors a vs b (finite pairs);
    ``a_better`` when a's median error is lower. None with fewer than 10 pairs."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 10 or np.all(a == b):
        return None
    res = wilcoxon(a, b)
    return {"n": int(a.size), "p_value": float(res.pvalue),
            "median_difference": float(np.median(a - b)), "a_better": bool(np.median(a - b) < 0)}
