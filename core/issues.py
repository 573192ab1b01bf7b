"""What kind of error a flagged label most likely has, so the queue can name it and
the editor offer the fix that matches.

Per sample, from its landmark outlier log-odds, its residuals and (where the
method judges them) its swap log-odds:

- ``swap``: the label reads better with its left/right pairs exchanged;
- ``points``: one or a few landmarks off (at most :data:`FEW_POINTS` of them);
- ``shifted``: many landmarks off, but a similarity transform (shift, scale,
  rotation) of the label onto the prediction fits it: a box or offset error;
- ``other_person``: as ``shifted``, but the transform moves the label by more
  than the object's own size: a plausible shape far from where the model sees
  the subject. On people (LSP) it was mostly a skeleton drawn on a bystander; on
  a one-animal DeepLabCut project it was the model that lost the animal (against
  the arena's wall) and the label was right, so the name says both;
- ``many_points``: many landmarks off and no such transform explains them;
- ``age``: an age label called wrong;
- ``hard``: the model's uncertainty for the image is among the widest
  (:data:`HARD_QUANTILE`) while nothing in the label is implausible: not flagged,
  or flagged as ``shifted`` (the label is a plausible shape the model placed
  elsewhere; on FG-NET's own labels these were profiles, infants and blur, the
  label right and the model wrong).

Samples not flagged otherwise get no issue (None). Coordinates are the model's
normalised units (the input square mapped to [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.scoring import sample_flagged

ISSUES = ("points", "swap", "shifted", "other_person", "many_points", "age", "hard")
# what each issue says to an annotator (queue, side card, ``gumshoe rank``)
ISSUE_TEXT = {
    "points": "a few points off",
    "swap": "left/right swapped",
    "shifted": "shifted or scaled label",
    "other_person": "on someone else, or the model lost the subject",
    "many_points": "many points off",
    "age": "age looks wrong",
    "hard": "hard image (model unsure)",
}
FEW_POINTS = 0.25  # at most this share of a sample's landmarks flagged: "points"
ALIGNED_TOLERANCE = 3.0  # median aligned residual within this many typical inlier residuals
OTHER_PERSON = 1.0  # the transform moved the label by more than this share of its extent
HARD_QUANTILE = 0.97


@dataclass(frozen=True)
class Similarity:
    """x -> scale * R(angle) x + shift, fitted by least squares (Umeyama 1991)."""

    scale: float
    angle: float
    shift: np.ndarray  # (2,)

    def apply(self, pts: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        return self.scale * pts @ rot.T + self.shift


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """The similarity that best maps points ``src`` (n, 2) onto ``dst`` (n, 2)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    var = float((a**2).sum())
    if var <= 1e-18:
        return Similarity(1.0, 0.0, mu_d - mu_s)
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0  # a reflection is not a similarity
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / (var / len(src)))
    angle = float(np.arctan2(rot[1, 0], rot[0, 0]))
    shift = mu_d - scale * rot @ mu_s
    return Similarity(scale, angle, shift)


def name_issue(targets: np.ndarray, pred: np.ndarray, mask: np.ndarray,
               log_odds: np.ndarray, sample_log_odds: float, swap_log_odds: float | None,
               typical: float, task: str) -> str | None:
    """The likely issue of one flagged-or-not sample (see the module docstring;
    ``hard`` is decided across samples by :func:`name_issues`). ``targets``,
    ``pred``, ``mask`` (D,); ``log_odds`` per point (K,), ``sample_log_odds`` the
    sample's; ``typical``: the median residual length of inlier landmarks
    (normalised units)."""
    if not sample_flagged(sample_log_odds):
        return None
    if task != "landmarks":
        return "age"
    if swap_log_odds is not None and np.isfinite(swap_log_odds) and swap_log_odds > 0:
        return "swap"
    lo = np.asarray(log_odds, np.float64)
    seen = np.isfinite(lo)
    bad = seen & (lo > 0)
    if bad.sum() <= max(1, FEW_POINTS * seen.sum()):
        return "points"
    m = mask.reshape(-1, 2).all(axis=1)
    if m.sum() < 3:
        return "many_points"
    y, p = targets.reshape(-1, 2)[m], pred.reshape(-1, 2)[m]
    sim = fit_similarity(y, p)
    moved = sim.apply(y)
    aligned = np.sqrt(((moved - p) ** 2).sum(axis=1))
    if np.median(aligned) > ALIGNED_TOLERANCE * max(typical, 1e-9):
        return "many_points"
    extent = float(np.sqrt(((p - p.mean(axis=0)) ** 2).sum(axis=1).mean()))
    travel = float(np.sqrt(((moved - y) ** 2).sum(axis=1).mean()))
    return "other_person" if travel > OTHER_PERSON * max(extent, 1e-9) else "shifted"


def name_issues(targets: np.ndarray, pred: np.ndarray, mask: np.ndarray,
                log_odds: np.ndarray, sample_log_odds: np.ndarray,
                swap_log_odds: np.ndarray | None, log_scale: np.ndarray | None,
                fit_rows: np.ndarray, task: str) -> list[str | None]:
    """:func:`name_issue` for every sample (N rows), then ``hard`` for unflagged
    samples, and samples named ``shifted``, whose mean predicted log scale is above
    the :data:`HARD_QUANTILE` of the ``fit_rows`` (training) samples'."""
    n = len(targets)
    res = np.where(mask, targets - pred, np.nan)
    if task == "landmarks":
        lengths = np.sqrt((res.reshape(n, -1, 2) ** 2).sum(axis=2))
    else:
        lengths = np.abs(res)
    inl = (log_odds < 0) & np.isfinite(lengths)
    ref = lengths[fit_rows][inl[fit_rows]]
    typical = float(np.median(ref)) if ref.size else float(np.nanmedian(lengths))
    out = [name_issue(targets[i], pred[i], mask[i], log_odds[i], float(sample_log_odds[i]),
                      None if swap_log_odds is None else float(swap_log_odds[i]), typical, task)
           for i in range(n)]
    if log_scale is not None and len(fit_rows):
        width = np.nanmean(np.where(np.isfinite(log_odds), log_scale, np.nan), axis=1)
        limit = np.nanquantile(width[fit_rows], HARD_QUANTILE)
        for i in range(n):
            if out[i] in (None, "shifted") and np.isfinite(width[i]) and width[i] > limit:
                out[i] = "hard"
    return out
