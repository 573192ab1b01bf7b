"""The one flag rule: which landmarks and samples a run calls wrong.

Every reader of scores (the editor, the review queue, ``gumshoe rank``, export,
the benchmarks) asks here instead of re-deriving a rule from the numbers. A
*row* is one sample's stored score row (a :class:`core.project.ScoreRow` as
``Project.sample_score`` / ``Project.scores`` return it, or a dict of its fields);
``method`` is the run's method.

The rule is the trainer's (:mod:`core.scoring`): every method scores a point, and
a sample, by the log-odds that its label is wrong; either is flagged above 0
(probability over one half). Runs stored before every method had probabilities
keep their meaning: a baseline's row without probabilities holds residual ratios
(the residual over the typical one), flagged over :data:`LEGACY_RATIO_FLAG`, a
sample with any flagged landmark. (A DeepGUM run stored before samples had their
own log-odds scored a sample by its worst landmark: it is flagged when that
landmark is.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.scoring import flags
from core.scoring import sample_flagged as score_flagged

LEGACY_RATIO_FLAG = 3.0  # old baseline runs: 3 times the typical residual


def _field(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


def is_log_odds(row: Any, method: str | None) -> bool:
    """Whether the row's scores are outlier log-odds (every run since methods all
    give probabilities; DeepGUM always), else an old baseline's residual ratios."""
    return (method == "deepgum" or _field(row, "outlier_prob") is not None
            or _field(row, "landmark_probs") is not None)


def unit_scores(row: Any) -> np.ndarray:
    """The row's per-landmark scores (an age row: its one score), NaN where missing."""
    lms = _field(row, "landmark_scores")
    if lms is None or len(lms) == 0:
        score = _field(row, "score")
        lms = [math.nan if score is None else score]
    return np.array([math.nan if v is None else float(v) for v in lms], dtype=np.float64)


def landmark_flags(row: Any, method: str | None) -> np.ndarray:
    """Per landmark (an age row: one value): whether the run calls that label wrong."""
    s = unit_scores(row)
    if is_log_odds(row, method):
        return flags(s)
    return np.nan_to_num(s, nan=-np.inf) > LEGACY_RATIO_FLAG


def sample_flagged(row: Any, method: str | None) -> bool:
    """Whether the run calls the sample's label wrong."""
    if is_log_odds(row, method):
        score = _field(row, "score")
        return score_flagged(None if score is None else float(score))
    return bool(landmark_flags(row, method).any())


def sample_threshold(log_odds: bool = True) -> float:
    """The sample score above which :func:`sample_flagged` calls a sample wrong, so a
    store can count flagged samples with one score comparison."""
    return 0.0 if log_odds else LEGACY_RATIO_FLAG


def landmark_probs(row: Any, method: str | None) -> np.ndarray | None:
    """P(label wrong) per landmark (an age: one), or None for an old baseline run."""
    if not is_log_odds(row, method):
        return None
    probs = _field(row, "landmark_probs")
    if probs is not None and len(probs):
        return np.array([math.nan if v is None else float(v) for v in probs], dtype=np.float64)
    s = np.clip(unit_scores(row), -50.0, 50.0)
    return 1.0 / (1.0 + np.exp(-s))


def flag_level(score: float | None, log_odds: bool) -> float | None:
    """A score on a 0-1 scale whose 0.5 is the flag threshold (log-odds: the
    probability itself; an old baseline's residual ratio: ratio / (2 x threshold))."""
    if score is None or not math.isfinite(score):
        return None
    if log_odds:
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, score))))
    return min(1.0, max(0.0, score / (2.0 * LEGACY_RATIO_FLAG)))


__all__ = ["LEGACY_RATIO_FLAG", "flag_level", "is_log_odds", "landmark_flags", "landmark_probs",
           "sample_flagged", "sample_threshold", "unit_scores"]
