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

from core.project import LabelConflictError


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


@dataclass(frozen=True)
class Batch:
    """Review decisions on many samples at once (the queue's batch confirm/exclude):
    one undo step. ``refused`` names the samples an undo or redo left alone because
    someone else changed them since."""

    edits: tuple[Edit, ...]
    description: str
    refused: tuple[str, ...] = ()

    @property
    def sample_id(self) -> int:
        return self.edits[0].sample_id

    @property
    def status_before(self) -> str:
        return self.edits[0].status_before

    @property
    def status_after(self) -> str:
        return self.edits[0].status_after


def apply_edit(project: Any, edit: Edit | Batch, *, undo: bool, author: str) -> Edit | Batch:
    """Write ``edit`` (forward) or its inverse (undo) as new, committed records, each
    naming the version it replaces; returns the edit with the version just written.
    A batch applies what it can: the samples changed by someone else since are left
    as they are and named in the returned batch's ``refused``."""
    if isinstance(edit, Batch):
        done, refused = [], []
        for e in edit.edits:
            try:
                done.append(apply_edit(project, e, undo=undo, author=author))
            except LabelConflictError as exc:
                refused.append(str(exc).splitlines()[0])
        if not done:
            raise LabelConflictError("; ".join(refused))
        return Batch(tuple(done), edit.description, tuple(refused))
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
    """The session's undo and redo stacks. Edits pushed with the same ``merge`` key one
    after the other (arrow-key nudges of one landmark) undo as one step; every one of
    them is still its own committed version in the file."""

    def __init__(self, limit: int = 500) -> None:
        self._undo: list[Edit | Batch] = []
        self._redo: list[Edit | Batch] = []
        self._limit = limit
        self._merge: object = None

    def push(self, edit: Edit | Batch, merge: object = None) -> None:
        top = self._undo[-1] if self._undo else None
        if merge is not None and merge == self._merge and isinstance(top, Edit) \
                and isinstance(edit, Edit) and top.sample_id == edit.sample_id:
            self._undo[-1] = Edit(edit.sample_id, edit.description, top.status_before,
                                  edit.status_after, top.before, edit.after, top.label_before,
                                  edit.label_after)
        else:
            self._undo.append(edit)
            del self._undo[:-self._limit]
        self._merge = merge
        self._redo.clear()

    def push_undone(self, edit: Edit | Batch) -> None:
        """An edit undone from outside the session (the file's history): redo-able."""
        self._redo.append(edit)
        self._merge = None

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self, project: Any, author: str) -> Edit | Batch | None:
        """Undo the latest edit; refused (and forgotten: it can no longer be undone)
        when someone else changed the sample since."""
        if not self._undo:
            return None
        self._merge = None
        edit = self._undo.pop()
        done = apply_edit(project, edit, undo=True, author=author)
        self._redo.append(done)
        if isinstance(edit, Edit):
            _relink(self._undo, edit, "label_after", edit.label_before, done.label_before)
        return done

    def redo(self, project: Any, author: str) -> Edit | Batch | None:
        if not self._redo:
            return None
        self._merge = None
        edit = self._redo.pop()
        done = apply_edit(project, edit, undo=False, author=author)
        self._undo.append(done)
        if isinstance(edit, Edit):
            _relink(self._redo, edit, "label_before", edit.label_after, done.label_after)
        return done

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._merge = None


def _relink(stack: list[Edit | Batch], edit: Edit, side: str, old: int | None,
            new: int | None) -> None:
    """An undo (redo) wrote ``edit``'s other side again as a new version: the next
    edit of that sample on ``stack`` that ended (began) with the version it replaced
    now ends (begins) with the new one, so undoing (redoing) it in turn is not taken
    for someone else's change. One that does not chain (someone else's version came
    between) keeps its check."""
    if edit.before is None or old is None or new is None or old == new:
        return
    for i in range(len(stack) - 1, -1, -1):
        e = stack[i]
        if isinstance(e, Edit) and e.sample_id == edit.sample_id and e.before is not None:
            if getattr(e, side) == old:
                stack[i] = replace(e, **{side: new})
            return

