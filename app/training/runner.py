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
    kind: str  # status | batch | em | epoch | scores
    run_id: int | None
    x: float = 0.0
    value: float | None = None
    hist: tuple[np.ndarray, np.ndarray] | None = None
    message: str = ""


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


class _Forward:
    """Engine callbacks -> Events through the worker context (on the training thread).
    Batch events are throttled by the context; the others are always sent."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def on_status(self, ev: Any) -> None:
        self.ctx.emit(Event("status", ev.run_id, message=f"{ev.status}: {ev.message}"),
                      force=True)

    def on_batch(self, ev: Any) -> None:
        self.ctx.wait_if_paused()  # a pause holds the loop here, between batches
        self.ctx.emit(Event("batch", ev.run_id, x=ev.epoch + ev.batch / max(ev.batches, 1),
                            value=float(ev.loss)), force=ev.batch == ev.batches)

    def on_estep(self, ev: Any) -> None:
        self.ctx.wait_if_paused()
        counts = np.asarray(ev.histogram, dtype=np.float64)
        edges = np.linspace(0.0, 1.0, len(counts) + 1)
        self.ctx.emit(Event("em", ev.run_id, x=float(ev.epoch), value=float(ev.inlier_fraction),
                            hist=(edges, counts) if len(counts) else None), force=True)

    def on_epoch_end(self, ev: Any) -> None:
        self.ctx.emit(Event("epoch", ev.run_id, x=float(ev.epoch + 1)), force=True)

    def on_scores(self, ev: Any) -> None:
        self.ctx.emit(Event("scores", ev.run_id, x=float(ev.epoch)), force=True)


def train_in_worker(ctx: WorkerContext, params: dict[str, Any], resume_run: int | None,
                    mode: dict[str, str] | None = None) -> int:
    """Worker function: one training run (or the resumption of a paused one). A stop
    request pauses the run (resumable) unless ``mode["stop"]`` is ``"stop"`` (the Stop
    button: the run ends for good)."""
    import os

    from core import training

    config = None
    if resume_run is None:
        # leave a core to the GUI thread so the window stays fluid
        threads = max(1, (os.cpu_count() or 2) - 1)
        config = training.TrainConfig(method=params["method"], epochs=int(params["epochs"]),
                                      image_size=int(params["image_size"]),
                                      device=params["device"], threads=threads,
                                      **params.get("extra", {}))
    def should_stop() -> str | bool:
        return (mode or {}).get("stop", "pause") if ctx.should_stop() else False

    return training.train(ctx.project_path, config, _Forward(ctx), should_stop,
                          resume=resume_run, owner="gui")
