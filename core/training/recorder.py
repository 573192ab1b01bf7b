"""Where a run is persisted. The loop never writes the project file itself: it
tells a :class:`Recorder`, so in a distributed run only rank 0 holds a
:class:`ProjectRecorder` and every other rank a :class:`Recorder` that keeps
nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.project import Project, ScoreRow, now_iso


class Recorder:
    """Keeps nothing (the non-writing ranks of a distributed run)."""

    def status(self, status: str, message: str = "", **fields: Any) -> None: ...

    def state(self, state: dict[str, Any]) -> None: ...

    def epoch(self, epoch: int, *, train_loss: float, val_error: float | None,
              inlier_fraction: float | None, images_per_s: float, seconds: float,
              metrics: dict[str, Any]) -> None: ...

    def scores(self, rows: Sequence[ScoreRow]) -> None: ...

    def checkpoint(self, path: str) -> None: ...


class ProjectRecorder(Recorder):
    """Writes the run's status, epochs, scores and checkpoint path into the project."""

    def __init__(self, project: Project, run_id: int) -> None:
        self.project, self.run_id = project, run_id

    def status(self, status: str, message: str = "", **fields: Any) -> None:
        if status == "finished":
            fields.setdefault("finished_at", now_iso())
        self.project.update_run(self.run_id, status=status, message=message, **fields)

    def state(self, state: dict[str, Any]) -> None:
        self.project.update_run(self.run_id, state=state)

    def epoch(self, epoch: int, *, train_loss: float, val_error: float | None,
              inlier_fraction: float | None, images_per_s: float, seconds: float,
              metrics: dict[str, Any]) -> None:
        self.project.add_epoch(self.run_id, epoch, train_loss=train_loss, val_error=val_error,
                               inlier_fraction=inlier_fraction, images_per_s=images_per_s,
                               seconds=seconds, metrics=metrics)

    def scores(self, rows: Sequence[ScoreRow]) -> None:
        self.project.write_scores(self.run_id, rows)

    def checkpoint(self, path: str) -> None:
        self.project.update_run(self.run_id, checkpoint=path)
