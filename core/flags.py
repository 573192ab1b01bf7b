"""The one flag rule: which landmarks and samples a run calls wrong.

Every reader of scores (the editor, the review queue, ``gumshoe rank``, export,
the benchmarks) asks here instead of re-deriving a rule from the numbers. A
*row* is one sample's stored score row (the dict ``Project.sample_score`` /
``Project.scores`` return, or a :class:`core.project.ScoreRow`); ``method`` is
the run's method.

Today the rule is the trainer's (:mod:`core.scoring`): DeepGUM flags a landmark
whose outlier log-odds is above 0 (responsibility under one half) and a sample
by the family-wise bound of ``image_threshold``; the baselines, which have no
probability, flag a landmark whose residual is over ``BASELINE_FLAG`` times the
typical one, and a sample with any flagged landmark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.scoring import BASELINE_FLAG, flags, image_flagged

LOG_ODDS_METHODS = frozenset({"deepgum"})


def has_log_odds(method: str | None) -> bool:
    """Whether ``method``'s scores are outlier log-odds (else residual ratios)."""
    return method in LOG_ODDS_METHODS


def _field(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


def unit_scores(row: Any) -> np.ndarray:
    """The row's per-landmark scores (an age row: its one score), NaN where missing."""
    lms = _field(row, "landmark_scores")
    if lms is None or len(lms) == 0:
        score = _field(row, "score")
        lms = [math.nan if score is None else score]
    return np.array([math.nan if v is None else float(v) for v in lms], dtype=np.float64)


def landmark_flags(row: Any, method: str | None) -> np.ndarray:
    """Per landmark (an age row: one value): whether the run calls that label wrong."""
    return flags(unit_scores(row), has_log_odds(method))


def sample_flagged(row: Any, method: str | None) -> bool:
    """Whether the run calls the sample's label wrong."""
    return image_flagged(unit_scores(row).tolist(), has_log_odds(method))


def landmark_probs(row: Any, method: str | None) -> np.ndarray | None:
    """P(label wrong) per landmark where the run has probabilities, else None."""
    if not has_log_odds(method):
        return None
    probs = _field(row, "landmark_probs")
    if probs is not None and len(probs):
        return np.array([math.nan if v is None else float(v) for v in probs], dtype=np.float64)
    s = np.clip(unit_scores(row), -50.0, 50.0)
    return 1.0 / (1.0 + np.exp(-s))


def flag_level(score: float | None, method: str | None) -> float | None:
    """A score on a 0-1 scale whose 0.5 is the flag threshold, for colouring a run
    without probabilities like one with them (DeepGUM: the probability itself)."""
    if score is None or not math.isfinite(score):
        return None
    if has_log_odds(method):
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, score))))
    return min(1.0, max(0.0, score / (2.0 * BASELINE_FLAG)))


__all__ = ["BASELINE_FLAG", "flag_level", "has_log_odds", "landmark_flags", "landmark_probs",
           "sample_flagged", "unit_scores"]
