"""What the editor knows about the sample it shows, read in one go (a few small
queries): the sample, its label versions, the run's scores, and from those the
landmarks an annotator has reviewed and the flags still open."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.review.rows import field
from app.review.scores import SampleScores
from core.export import changed_landmarks
from core.project import Label, Sample

DATASET_ORIGINS = ("import", "noise")  # versions that say what the dataset says


@dataclass(frozen=True)
class SampleState:
    sample: Sample
    label: Label  # the current version
    versions: tuple[Label, ...]  # every version, oldest first
    status: str  # the review status
    scores: SampleScores | None

    @property
    def base(self) -> Label:
        """The dataset's label: the latest version that no annotator made."""
        for lab in reversed(self.versions):
            if lab.origin in DATASET_ORIGINS:
                return lab
        return self.versions[0]

    @property
    def n_keypoints(self) -> int:
        return 0 if self.label.points is None else len(self.label.points)

    @property
    def reviewed(self) -> np.ndarray:
        """Per landmark: an annotator set, accepted, hid or confirmed it (the label now
        differs from the dataset's there, or the whole label was confirmed right)."""
        k = self.n_keypoints
        if self.status == "confirmed":
            return np.ones(k, dtype=bool)
        out = np.zeros(k, dtype=bool)
        out[changed_landmarks(self.base, self.label)] = True
        return out

    @property
    def labelled(self) -> np.ndarray:
        lab = self.label
        if lab.points is None:
            return np.zeros(0, dtype=bool)
        ok = np.isfinite(lab.points).all(axis=1)
        if lab.visibility is not None:
            ok &= np.asarray(lab.visibility) > 0
        return ok

    @property
    def open_flags(self) -> np.ndarray:
        """Landmarks the run flags that nobody has reviewed yet."""
        k = self.n_keypoints
        sc = self.scores
        if sc is None or len(sc.flags) != k:
            return np.zeros(k, dtype=bool)
        return sc.flags & ~self.reviewed & self.labelled

    def flagged_order(self, only_open: bool = True) -> list[int]:
        """Flagged landmarks, worst first (the queue's order)."""
        sc = self.scores
        if sc is None or len(sc.flags) != self.n_keypoints:
            return []
        return sc.worst_first(self.open_flags if only_open else sc.flags & self.labelled)

    def first_selection(self) -> int:
        """The landmark to select on arrival: the worst open flag, else the one the
        queue names (the run's worst), else none."""
        order = self.flagged_order()
        if order:
            return order[0]
        w = None if self.scores is None else self.scores.worst()
        return -1 if w is None or w >= self.n_keypoints else w


def load_state(project: Any, sample_id: int, run_id: int | None, method: str | None,
               n_keypoints: int) -> SampleState:
    sample = project.sample(sample_id)
    versions = tuple(project.label_history(sample_id))
    row = project.sample_score(sample_id, run_id)
    if row is not None and method is None:
        method = field(project.run(int(field(row, "run_id"))), "method")
    return SampleState(sample, versions[-1], versions, sample.review_status,
                       SampleScores.of(row, method, n_keypoints))
