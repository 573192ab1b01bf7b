"""Undo/redo across samples on top of the append-only label history.

An undo never deletes anything: it appends a new label version that restores
the previous targets (or a new review event restoring the previous status),
so the file keeps every step and who took it. Each step names the version (or
status) it replaces, so an undo or redo after someone else changed the sample is
refused (``LabelConflictError``) instead of reverting their edit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Targets:
    points: np.ndarray | None = None
    visibility: np.ndarray | None = None
    age: float | None = None

    @classmethod
    def of(cls, label: Any) -> Targets:
        return cls(None if label.points is None else label.points.copy(),
                   None if label.visibility is None else label.visibility.copy(), label.age)


@dataclass(frozen=True)
class Edit:
    sample_id: int
    description: str
    status_before: str
    status_after: str
    before: Targets | None = None  # None: a review-only edit (confirm, exclude)
    after: Targets | None = None
    label_before: int | None = None  # the label versions holding each side (None: unchecked)
    label_after: int | None = None


def apply_edit(project: Any, edit: Edit, *, undo: bool, author: str) -> Edit:
    """Write ``edit`` (forward) or its inverse (undo) as new, committed records, each
    naming the version it replaces; returns the edit with the version just written."""
    targets = edit.before if undo else edit.after
    status = edit.status_before if undo else edit.status_after
    note = ("undo: " if undo else "redo: ") + edit.description
    if targets is None:
        project.set_review(edit.sample_id, status, author=author, note=note,
                           replaces=edit.status_after if undo else edit.status_before)
        return edit
    lid = project.add_label(edit.sample_id, points=targets.points, visibility=targets.visibility,
                            age=targets.age, origin="annotator", author=author, note=note,
                            review_status=status,
                            replaces=edit.label_after if undo else edit.label_before)
    return replace(edit, label_before=lid) if undo else replace(edit, label_after=lid)


class EditHistory:
    def __init__(self, limit: int = 500) -> None:
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._limit = limit

    def push(self, edit: Edit) -> None:
        self._undo.append(edit)
        del self._undo[:-self._limit]
        self._redo.clear()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self, project: Any, author: str) -> Edit | None:
        """Undo the latest edit; refused (and forgotten: it can no longer be undone)
        when someone else changed the sample since."""
        if not self._undo:
            return None
        edit = self._undo.pop()
        done = apply_edit(project, edit, undo=True, author=author)
        self._redo.append(done)
        return done

    def redo(self, project: Any, author: str) -> Edit | None:
        if not self._redo:
            return None
        edit = self._redo.pop()
        done = apply_edit(project, edit, undo=False, author=author)
        self._undo.append(done)
        return done

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
