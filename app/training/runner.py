"""The glue between the training panel's worker and ``core.training.train``.

``train_in_worker`` runs in the worker thread with its own project connection.
It turns the engine's callbacks into :class:`Event` values (plain floats and
NumPy copies) sent through the worker context, throttled there; epoch-level
numbers also reach the panel from the file (``Project.epochs``), so a dropped
event never loses a point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.workers import WorkerContext

HIST_BINS = 20


@dataclass(frozen=True)
class Event:
    kind: str  # run | batch | em | epoch
    run_id: int | None
    x: float = 0.0
    value: float | None = None
    hist: tuple[np.ndarray, np.ndarray] | None = None


def methods() -> tuple[str, ...]:
    try:
        from core.robust import METHODS
    except ImportError:  # pragma: no cover
        return ("deepgum", "l2", "huber", "tukey", "barron")
    return tuple(METHODS)


def histogram(r: Any) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(r, dtype=np.float64).reshape(-1)
    arr = arr[np.isfinite(arr)]
    counts, edges = np.histogram(arr, bins=HIST_BINS, range=(0.0, 1.0))
    return edges, counts.astype(np.float64)


def train_in_worker(ctx: WorkerContext, params: dict[str, Any], resume_run: int | None) -> Any:
    from core import training

    return training_call(training, ctx, params, resume_run)


def training_call(training: Any, ctx: WorkerContext, params: dict[str, Any],
                  resume_run: int | None) -> Any:  # replaced once core.training lands
    raise NotImplementedError("core.training is not available yet")
