"""A sample's history as a list of changes: every label version and every review
decision, with who, when, the version's origin, and which landmarks moved by
how many pixels. The history panel shows it; undo beyond the session walks it.

A label version written together with a review decision (an annotator's edit
marks the sample *fixed* in the same transaction) is one change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from app.review.history import Edit, Targets
from app.review.rows import field
from core.export import changed_landmarks
from core.project import Label

SAME_TRANSACTION_S = 2.0
VISIBILITY = {0: "not labelled", 1: "occluded", 2: "visible"}


@dataclass(frozen=True)
class Change:
    kind: str  # "label": a new version (maybe with a status); "review": a status only
    when: str  # ISO time
    who: str
    origin: str  # the version's origin (import, annotator, model, noise), or "review"
    note: str
    status_before: str
    status_after: str
    label: Label | None = None  # the version this change made
    previous: Label | None = None  # the version before it
    version: int = 0  # 1-based number of ``label`` (label changes), else the current one
    moved: tuple[tuple[int, float], ...] = ()  # (landmark, pixels; NaN: shown/hidden)

    @property
    def undoable(self) -> bool:
        """A person's change (not the import or the benchmark's noise)."""
        return self.kind == "review" or (self.previous is not None
                                         and self.origin in ("annotator", "model"))

    def as_edit(self, sample_id: int) -> Edit:
        """This change as an undoable edit (before -> after)."""
        if self.kind == "review" or self.label is None or self.previous is None:
            return Edit(sample_id, self.note or f"set {self.status_after}", self.status_before,
                        self.status_after)
        return Edit(sample_id, self.note or f"version {self.version}", self.status_before,
                    self.status_after, Targets.of(self.previous), Targets.of(self.label))


def moves(old: Label, new: Label) -> tuple[tuple[int, float], ...]:
    """Landmarks that differ between two versions, with the distance moved."""
    if old.points is None or new.points is None:
        if old.age != new.age and old.age is not None and new.age is not None:
            return ((0, abs(float(new.age) - float(old.age))),)
        return ()
    out = []
    for i in changed_landmarks(old, new):
        a, b = old.points[i], new.points[i]
        d = float(np.hypot(*(b - a))) if np.isfinite(a).all() and np.isfinite(b).all() \
            else math.nan
        out.append((i, d))
    return tuple(out)


def _t(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def timeline(versions: Sequence[Label], events: Sequence[dict[str, Any]]) -> list[Change]:
    """The changes of one sample, oldest first, from its label versions and review
    events (``Project.label_history`` and ``Project.review_history``)."""
    items: list[tuple[float, int, int, Any]] = []
    for n, lab in enumerate(versions):
        items.append((_t(lab.created_at), 0, n, lab))
    for n, ev in enumerate(events):
        items.append((_t(field(ev, "created_at")), 1, n, ev))
    items.sort(key=lambda t: (t[0], t[1], t[2]))
    out: list[Change] = []
    status = "unreviewed"
    current = 0
    for when_s, kind, n, obj in items:
        if kind == 0:
            lab: Label = obj
            prev = versions[n - 1] if n > 0 else None
            current = n + 1
            out.append(Change("label", lab.created_at, lab.author, lab.origin, lab.note, status,
                              status, lab, prev, n + 1,
                              () if prev is None else moves(prev, lab)))
            continue
        author, note, new = field(obj, "author"), field(obj, "note"), field(obj, "status")
        last = out[-1] if out else None
        if (last is not None and last.kind == "label" and last.status_after == last.status_before
                and last.who == author and last.note == note
                and when_s - _t(last.when) <= SAME_TRANSACTION_S
                and last.origin in ("annotator", "model")):
            out[-1] = Change("label", last.when, last.who, last.origin, last.note,
                             last.status_before, new, last.label, last.previous,
                             last.version, last.moved)
        else:
            out.append(Change("review", field(obj, "created_at"), author, "review", note,
                              status, new, version=current))
        status = new
    return out


def describe(change: Change, names: Sequence[str], limit: int = 3) -> str:
    """What moved, in words: "nose 12.3 px, jaw_3 4.0 px and 2 more"."""
    if change.kind == "review":
        return ""
    if change.label is not None and change.label.points is None:
        return "" if not change.moved else f"age {change.previous.age:g} → {change.label.age:g}"
    parts = []
    vis = None if change.label is None else change.label.visibility
    for i, d in change.moved[:limit]:
        name = names[i] if i < len(names) else f"#{i}"
        if not math.isfinite(d):
            parts.append(f"{name} {'removed' if vis is not None and vis[i] == 0 else 'placed'}")
        elif d < 1e-6:
            parts.append(f"{name} {VISIBILITY.get(int(vis[i]), '?') if vis is not None else ''}")
        else:
            parts.append(f"{name} {d:.1f} px")
    more = len(change.moved) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")
