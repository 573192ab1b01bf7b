"""The store's typed rows (frozen dataclasses, one per kind of record), its
vocabularies and its errors. Everything a caller gets back from a
:class:`~core.store.Project` is one of these, never a dict."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SUFFIX = ".gumshoe"
REVIEW_STATUSES = ("unreviewed", "confirmed", "fixed", "excluded")
LABEL_ORIGINS = ("import", "annotator", "model", "noise")
SPLITS = ("train", "val", "test")
# running: a trainer holds it; paused: resumable; stopped: ended by the user, not
# resumable; finished; failed: resumable where a checkpoint exists
RUN_STATUSES = ("running", "paused", "stopped", "finished", "failed")
LEASE_OWNERS = ("gui", "cli", "bench")


class ProjectError(Exception):
    """A project file that cannot be opened or an operation it refuses (one line)."""


class FutureProjectError(ProjectError):
    """The file was written by a newer Gumshoe (higher schema version)."""


class ReadOnlyProjectError(ProjectError):
    """A write to a project that is open read-only."""


class LabelConflictError(ProjectError):
    """An edit that names a label version (or review status) that is no longer current:
    someone else changed the sample since. The message names who and when."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def host_name() -> str:
    return socket.gethostname() or os.uname().nodename


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class LabelSchema:
    """What a project's labels mean: ``task`` is ``landmarks`` or ``age``."""

    task: str
    name: str = ""
    keypoints: tuple[str, ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    # the subject faces the camera upright (faces): the first keypoint of each flip pair
    # is on the image's left (the subject's right), which tells left from right even in
    # a set where half the labels have their sides exchanged
    frontal: bool = False

    def __post_init__(self) -> None:
        if self.task not in ("landmarks", "age"):
            raise ValueError(f"unknown task {self.task!r} (expected 'landmarks' or 'age')")
        if self.task == "landmarks" and not self.keypoints:
            raise ValueError("a landmarks schema needs named keypoints")

    @property
    def n_keypoints(self) -> int:
        return len(self.keypoints)

    def flip_permutation(self) -> np.ndarray:
        """Index array mapping each keypoint to its mirror partner (its own inverse).
        Pairs that share a keypoint or name one out of range are refused."""
        perm = np.arange(self.n_keypoints)
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            if not (0 <= a < self.n_keypoints and 0 <= b < self.n_keypoints) or a == b \
                    or a in seen or b in seen:
                raise ValueError(f"schema {self.name or self.task!r}: flip pair ({a}, {b}) is out of "
                                 "range or shares a keypoint with another pair")
            seen.update((a, b))
            perm[a], perm[b] = b, a
        return perm

    def to_json(self) -> str:
        return json.dumps({"task": self.task, "name": self.name, "keypoints": list(self.keypoints),
                           "flip_pairs": [list(p) for p in self.flip_pairs],
                           "skeleton": [list(p) for p in self.skeleton],
                           "frontal": self.frontal})

    @classmethod
    def from_json(cls, text: str) -> LabelSchema:
        """Decoded defensively: anything but the shape :meth:`to_json` writes raises
        ValueError with one line."""
        from core.store.codec import load_json

        d = load_json(text, "label schema")
        try:
            if not isinstance(d, dict):
                raise TypeError("not an object")
            pairs = [tuple(int(i) for i in p) for p in d.get("flip_pairs", ())]
            skel = [tuple(int(i) for i in p) for p in d.get("skeleton", ())]
            if any(len(p) != 2 for p in pairs + skel):
                raise ValueError("a pair is not two indices")
            names = d.get("keypoints", ())
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError("keypoints are not a list of names")
            return cls(task=str(d["task"]), name=str(d.get("name", "")), keypoints=tuple(names),
                       flip_pairs=tuple(pairs), skeleton=tuple(skel),  # type: ignore[arg-type]
                       frontal=bool(d.get("frontal", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed label schema ({exc})") from None


# --------------------------------------------------------------------------- samples, labels


@dataclass(frozen=True)
class Sample:
    id: int
    source_id: int
    key: str
    path: str  # relative to the source root, forward slashes
    width: int
    height: int
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in image pixels
    split: str
    content_hash: str
    review_status: str
    root: str  # the source root (absolute)

    @property
    def image_path(self) -> Path:
        return Path(self.root) / self.path


@dataclass(frozen=True)
class Label:
    """One version of a sample's targets. ``replaces`` is the version it was written
    over (None for the first)."""

    id: int
    sample_id: int
    points: np.ndarray | None  # (K, 2) float64, NaN where missing
    visibility: np.ndarray | None  # (K,) int8
    age: float | None
    origin: str
    author: str
    created_at: str
    note: str
    replaces: int | None = None

    @property
    def targets(self) -> np.ndarray:
        """Flat float64 target vector (2K for landmarks, 1 for age)."""
        if self.points is not None:
            return self.points.reshape(-1)
        return np.array([np.nan if self.age is None else self.age])


@dataclass(frozen=True)
class NewSample:
    """A sample as a reader produces it, before it has an id."""

    key: str
    path: str
    width: int
    height: int
    content_hash: str
    points: np.ndarray | None = None
    visibility: np.ndarray | None = None
    age: float | None = None
    box: tuple[float, float, float, float] | None = None
    split: str = "train"


@dataclass(frozen=True)
class ReviewEvent:
    id: int
    sample_id: int
    status: str
    author: str
    created_at: str
    note: str
    replaces: str | None = None  # the status it was written over


@dataclass(frozen=True)
class Source:
    id: int
    root: str
    format: str
    task: str
    options: dict[str, Any]
    status: str  # importing | complete
    skipped: int
    created_at: str
    completed_at: str | None


@dataclass(frozen=True)
class ImportSkip:
    id: int
    source_id: int
    path: str
    reason: str
    created_at: str


# --------------------------------------------------------------------------- runs, scores


@dataclass(frozen=True)
class Run:
    id: int
    method: str
    params: dict[str, Any]
    status: str  # see RUN_STATUSES
    device: str
    host: str
    pid: int | None
    started_at: str
    updated_at: str
    finished_at: str | None
    checkpoint: str | None
    state: dict[str, Any]
    message: str
    score_set: int | None = None  # the published scores (None: none yet)

    @property
    def epochs_planned(self) -> int:
        cfg = self.params.get("config") if isinstance(self.params.get("config"), dict) else {}
        try:
            return int(cfg.get("epochs") or self.params.get("epochs") or 0)
        except (TypeError, ValueError):
            return 0


@dataclass(frozen=True)
class Epoch:
    run_id: int
    epoch: int
    train_loss: float | None
    val_error: float | None
    inlier_fraction: float | None
    images_per_s: float | None
    seconds: float | None
    metrics: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class ScoreRow:
    """One sample's result in a run: written by the trainer, read back typed.

    ``score`` is the ranking key (higher = more likely wrong), ``outlier_prob`` the
    sample's P(label wrong) where the method has one, ``landmark_scores`` per landmark
    in the unit of ``score``, ``landmark_probs`` per landmark P(wrong) (read back as
    sigmoid(landmark_scores) when the method has probabilities and the writer gave
    nothing else), ``prediction`` 2K image pixels (or [age]), ``prediction_std`` the
    model's uncertainty (per dimension or per landmark), ``issue`` the named likely
    error, ``statistic`` the method's raw statistic. Read back, arrays are tuples of
    floats (NaN where missing), ``worst_landmark`` is the landmark with the highest
    score (derived by the store at write time; a writer's value is ignored) and
    ``run_id`` the run. Fields a reader did not ask for are None."""

    sample_id: int
    score: float
    outlier_prob: float | None = None
    landmark_scores: Sequence[float] | None = None
    landmark_probs: Sequence[float] | None = None
    prediction: Sequence[float] | None = None
    prediction_std: Sequence[float] | None = None
    issue: str | None = None
    statistic: float | None = None
    worst_landmark: int | None = None
    run_id: int | None = None


# --------------------------------------------------------------------------- queue, lease, merge


@dataclass(frozen=True)
class QueueRow:
    """One row of the review queue. ``conflict``: a merge found that two people
    changed this sample (both versions kept; see :meth:`Project.conflicts`).
    ``age``/``predicted_age``: age projects only (the current label and the model)."""

    sample_id: int
    key: str
    path: str
    split: str
    review_status: str
    score: float | None
    outlier_prob: float | None
    worst_landmark: int | None
    issue: str | None
    reviewed_by: str | None
    reviewed_at: str | None
    conflict: bool = False
    age: float | None = None
    predicted_age: float | None = None


@dataclass(frozen=True)
class LeaseInfo:
    """Who trains on the project: the lease row."""

    run_id: int | None
    owner: str  # gui | cli | bench
    pid: int
    host: str
    since: str
    heartbeat: str

    def describe(self) -> str:
        run = "" if self.run_id is None else f"run {self.run_id}, "
        return (f"{run}{self.owner} pid {self.pid} on {self.host}, since {self.since}, "
                f"last heard {self.heartbeat}")


class LeaseHeldError(ProjectError):
    """Another live trainer holds the project's lease; ``holder`` says who."""

    def __init__(self, message: str, holder: LeaseInfo) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLostError(ProjectError):
    """This trainer's lease was taken over (it was silent for too long)."""


@dataclass(frozen=True)
class Conflict:
    """Two people changed one sample in copies that were merged: ``ours`` was current
    here, ``theirs`` in the merged copy (label ids or review event ids, by ``kind``);
    ``kept`` is the one now current (the newer)."""

    id: int
    sample_id: int
    kind: str  # label | review
    ours: int
    theirs: int
    kept: int
    merged_from: str
    created_at: str
    resolved_at: str | None
