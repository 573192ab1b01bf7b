"""Robust training criteria: DeepGUM and the baselines, one file each.

A criterion turns (prediction, target, per-dimension weight) into a loss, and may
fit state on the training residuals between epochs (DeepGUM's EM). Targets and
residuals are in normalised units (landmarks: the input square mapped to
[-1, 1]; age: the label range mapped to [-1, 1]). ``weight`` carries the mask:
0 where a label is missing.
"""

from __future__ import annotations

from typing import Any

from core.robust.base import Criterion

METHODS = ("deepgum", "l2", "huber", "tukey", "barron")


def make_criterion(method: str, n_dims: int, **options: Any) -> Criterion:
    """The criterion for ``method`` (one of :data:`METHODS`)."""
    if method == "deepgum":
        from core.robust.deepgum import DeepGUMCriterion

        return DeepGUMCriterion(n_dims, **options)
    if method == "l2":
        from core.robust.l2 import L2Criterion

        return L2Criterion(n_dims)
    if method == "huber":
        from core.robust.huber import HuberCriterion

        return HuberCriterion(n_dims)
    if method == "tukey":
        from core.robust.tukey import TukeyCriterion

        return TukeyCriterion(n_dims)
    if method == "barron":
        from core.robust.barron import BarronCriterion

        return BarronCriterion(n_dims)
    raise ValueError(f"unknown method {method!r} (expected one of {', '.join(METHODS)})")
