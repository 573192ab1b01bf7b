"""How the GUI reads a run's scores: one place for what a person sees.

A stored score row becomes a :class:`SampleScores`: per landmark the outlier
score, the probability that the label is wrong, the flags of the one flag rule
(:mod:`core.flags`), and a 0-1 *level* for colour whose 0.5 is the flag
threshold. Texts: a probability as a percentage; a run stored before every
method had probabilities (an old baseline run) shows its raw statistic, the
residual as a multiple of the typical one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.review.rows import field
from core import flags as flag_rule


def fmt_prob(p: float) -> str:
    """A probability as a percentage that never claims certainty it does not have:
    99.97 % is "> 99 %", not "100 %"."""
    if not math.isfinite(p):
        return "–"
    if p >= 0.995:
        return "> 99 %"
    if p <= 0.005:
        return "< 1 %"
    return f"{p * 100:.0f} %"


def doubt_text(prob: float | None, score: float | None, method: str | None) -> str:
    """What the queue and the editor show for a sample or landmark: P(wrong) as a
    percentage where the run has it, else the run's raw statistic."""
    if prob is not None and math.isfinite(prob):
        return fmt_prob(prob)
    if score is None or not math.isfinite(score):
        return ""
    if method == "deepgum":
        return fmt_prob(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, score)))))
    return f"{score:.1f}× typical"


def doubt_level(prob: float | None, score: float | None, method: str | None) -> float | None:
    """0-1 for colour (0.5 at the flag threshold)."""
    if prob is not None and math.isfinite(prob):
        return float(prob)
    return flag_rule.flag_level(score, method == "deepgum")


# the fix the side card offers for each named error: (action, button text)
ISSUE_FIXES = {
    "swap": ("swap", "Swap left/right  (S)"),
    "shifted": ("accept_every", "Model's label  (Ctrl+Shift+A)"),
    "other_person": ("accept_every", "Model's label  (Ctrl+Shift+A)"),
    "many_points": ("accept_all", "Model's flagged points (Shift+A)"),
    "points": ("accept", "Model's point  (A)"),
}  # an age has its own "Use model's estimate" button

# the run's named error (core.issues) and the key that fixes it
ISSUE_HINTS = {
    "points": "a few landmarks: Tab to them, A takes the model's",
    "swap": "left and right exchanged: S swaps them back",
    "shifted": "the whole label shifted: Ctrl+Shift+A takes the model's",
    "other_person": ("label and model far apart: on someone else (Ctrl+Shift+A, or X "
                     "to exclude), or the model lost the subject (C: label is right)"),
    "many_points": "many landmarks off: Shift+A, or Ctrl+Shift+A for all",
    "age": "the age: A takes the model's",
    "hard": "a hard image (the model is unsure, the label may be right)",
}


def score_for_level(level: float | None, log_odds: bool) -> float | None:
    """The score at a doubt level (a probability): the inverse of :func:`doubt_level`."""
    if level is None:
        return None
    p = min(max(float(level), 1e-12), 1 - 1e-12)
    if log_odds:
        return math.log(p / (1 - p))
    return p * 2.0 * flag_rule.LEGACY_RATIO_FLAG


@dataclass(frozen=True)
class SampleScores:
    """One sample's scores in one run, read for display (landmarks or an age)."""

    run_id: int | None
    method: str | None
    score: float | None  # the ranking key (higher: more likely wrong)
    prob: float | None  # P(label wrong) of the sample, where the run has one
    unit_scores: np.ndarray  # (K,) per landmark ((1,) for an age), NaN where missing
    unit_probs: np.ndarray | None  # (K,) where the run has probabilities
    flags: np.ndarray  # (K,) bool: the one flag rule
    flagged: bool  # the sample, by the one flag rule
    prediction: np.ndarray | None  # (K, 2) image pixels, or (1,) years
    prediction_std: np.ndarray | None
    issue: str | None = None  # the likely kind of error the run names (core.issues)

    @classmethod
    def of(cls, row: Any, method: str | None,
           n_keypoints: int = 0) -> SampleScores | None:
        if row is None:
            return None
        units = flag_rule.unit_scores(row)
        pred = field(row, "prediction")
        pred_arr = None
        if pred is not None and len(pred):
            arr = np.asarray(pred, dtype=np.float64)
            if n_keypoints and arr.size == 2 * n_keypoints:
                pred_arr = arr.reshape(n_keypoints, 2)
            elif not n_keypoints:
                pred_arr = arr
        std = field(row, "prediction_std")
        prob = field(row, "outlier_prob")
        score = field(row, "score")
        if flag_rule.is_log_odds(row, method) and prob is None and score is not None:
            prob = flag_rule.flag_level(score, True)
        return cls(field(row, "run_id"), method, score,
                   None if prob is None else float(prob), units,
                   flag_rule.landmark_probs(row, method), flag_rule.landmark_flags(row, method),
                   flag_rule.sample_flagged(row, method), pred_arr,
                   None if std is None else np.asarray(std, dtype=np.float64),
                   field(row, "issue"))

    def _unit(self, i: int) -> tuple[float | None, float | None]:
        s = float(self.unit_scores[i]) if 0 <= i < len(self.unit_scores) else math.nan
        p = None
        if self.unit_probs is not None and 0 <= i < len(self.unit_probs):
            p = float(self.unit_probs[i])
        return (None if math.isnan(s) else s), (None if p is None or math.isnan(p) else p)

    def level(self, i: int) -> float | None:
        s, p = self._unit(i)
        return doubt_level(p, s, self.method)

    def text(self, i: int) -> str:
        s, p = self._unit(i)
        return doubt_text(p, s, self.method)

    def sample_text(self) -> str:
        return doubt_text(self.prob, self.score, self.method)

    def level_sample(self) -> float | None:
        return doubt_level(self.prob, self.score, self.method)

    def predicted(self, i: int) -> bool:
        p = self.prediction
        return p is not None and p.ndim == 2 and i < len(p) and bool(np.isfinite(p[i]).all())

    def worst(self) -> int | None:
        """The landmark with the highest score: the one the queue names."""
        s = np.where(np.isfinite(self.unit_scores), self.unit_scores, -np.inf)
        return None if not len(s) or not np.isfinite(s).any() else int(np.argmax(s))

    def worst_first(self, mask: np.ndarray) -> list[int]:
        """Indices where ``mask`` holds, highest score first (ties: lower index first)."""
        idx = [int(i) for i in np.flatnonzero(mask)]
        s = self.unit_scores
        return sorted(idx, key=lambda i: (-(s[i] if np.isfinite(s[i]) else -np.inf), i))
