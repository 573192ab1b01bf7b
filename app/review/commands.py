"""The editor's edit commands (a mixin of :class:`app.review.editor.EditorWidget`).

Every command is committed at once through the GUI thread's project connection
(one small transaction each) under the annotator's name, and pushed on the
cross-sample undo history. Undo past the session walks the sample's history in
the file (:mod:`app.review.timeline`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace
from typing import Any

import numpy as np

from app.review.history import Batch, Edit, Targets, apply_edit
from app.review.state import SampleState
from app.review.timeline import Change, timeline
from core.project import LabelConflictError, ProjectError

NUDGE_PX = 1.0
NUDGE_SHIFT_PX = 10.0
VISIBILITY_CYCLE = {2: 1, 1: 0, 0: 2}  # visible -> occluded -> not labelled -> visible


BATCH_NOTES = {"confirmed": "label is right", "excluded": "excluded",
               "unreviewed": "back to review"}


def write_reviews(ctx: Any, sample_ids: list[int], status: str,
                  author: str) -> list[tuple[int, str, str, str]]:
    """Worker: set ``status`` on each sample that does not have it yet; returns
    (sample id, status before, after, note) of those changed. A sample whose status
    another process changes between the read and the write is left as it is."""
    project = ctx.project()
    note = BATCH_NOTES.get(status, status) + " (batch)"
    out = []
    for sid in sample_ids:
        if ctx.should_stop():
            break
        before = project.sample(sid).review_status
        if before != status:
            with contextlib.suppress(LabelConflictError):
                project.set_review(sid, status, author=author, note=note, replaces=before)
                out.append((sid, before, status, note))
    return out


class EditCommands:
    """Needs from the widget: ``project``, ``schema``, ``state``, ``canvas``,
    ``history``, ``annotator``, ``_reload``, ``_select``, the signals ``edited``,
    ``next_requested``, ``history_changed``, ``message`` and ``auto_advance``."""

    project: Any
    schema: Any
    state: SampleState | None
    history: Any
    canvas: Any
    auto_advance: bool

    # ------------------------------------------------------------------ plumbing
    def _name(self, i: int) -> str:
        names = self.schema.keypoints if self.schema is not None else ()
        return names[i] if i < len(names) else f"landmark {i}"

    def _commit_label(self, targets: Targets, description: str, origin: str = "annotator",
                      merge: object = None, select: int | None = None) -> None:
        st = self.state
        sid = st.sample.id
        before = Targets.of(st.label)
        status_before = st.status
        try:  # compare-and-append: refused if someone else changed the sample meanwhile
            lid = self.project.add_label(sid, points=targets.points, visibility=targets.visibility,
                                         age=targets.age, origin=origin, author=self.annotator,
                                         note=description, replaces=st.label.id)
        except (ProjectError, sqlite3.Error) as exc:
            self._not_saved(exc)
            return
        self.history.push(Edit(sid, description, status_before, "fixed", before, targets,
                               st.label.id, lid), merge)
        self._file_undo = None
        self._reload(select)
        self.edited.emit(sid, "fixed")
        self.history_changed.emit()

    def _not_saved(self, exc: Exception, what: str = "Not saved") -> None:
        """An edit the file refused (another annotator's newer version, a locked or
        read-only file): show the sample as stored now, so the marker goes back, and why."""
        if self.state is not None:
            with contextlib.suppress(ProjectError, sqlite3.Error):
                self._reload(self.canvas.selected)
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.hint.setText(f"{what}: {why}")  # beside the canvas, where the annotator looks
        self.hint.setToolTip(str(exc))
        self.message.emit(f"{what}: {why}")

    def _points(self) -> tuple[np.ndarray, np.ndarray] | None:
        st = self.state
        if st is None or st.label.points is None:
            return None
        lab = st.label
        pts = lab.points.copy()
        vis = (np.where(np.isfinite(pts).all(axis=1), 2, 0) if lab.visibility is None
               else np.asarray(lab.visibility).copy()).astype(np.int8)
        return pts, vis

    # ------------------------------------------------------------------ landmarks
    def move_landmark(self, i: int, x: float, y: float) -> None:
        """Move landmark ``i`` to (x, y) image pixels and commit a new label version."""
        pv = self._points()
        if pv is None:
            return
        pts, vis = pv
        pts[i] = (x, y)
        if vis[i] == 0:
            vis[i] = 2
        self._commit_label(Targets(pts, vis), f"moved {self._name(i)}", select=i)

    def nudge(self, dx: float, dy: float) -> None:
        """Move the selected landmark by (dx, dy) image pixels (arrow keys)."""
        i = self.canvas.selected
        pv = self._points()
        if pv is None or not 0 <= i < len(pv[0]) or not np.isfinite(pv[0][i]).all():
            return
        pts, vis = pv
        pts[i] += (dx, dy)
        self._commit_label(Targets(pts, vis), f"nudged {self._name(i)}",
                           merge=("nudge", self.state.sample.id, i), select=i)

    def cycle_visibility(self) -> None:
        """V: the selected landmark visible -> occluded -> not labelled -> visible (placed
        where it last was, else at the model's estimate, else at the image centre)."""
        i = self.canvas.selected
        pv = self._points()
        if pv is None or not 0 <= i < len(pv[0]):
            return
        pts, vis = pv
        new = VISIBILITY_CYCLE[int(vis[i]) if np.isfinite(pts[i]).all() else 0]
        if new == 0:
            pts[i] = np.nan
        elif not np.isfinite(pts[i]).all():
            pts[i] = self._last_position(i)
        vis[i] = new
        word = {2: "visible", 1: "occluded", 0: "not labelled"}[new]
        self._commit_label(Targets(pts, vis), f"{self._name(i)} {word}", select=i)

    def _last_position(self, i: int) -> np.ndarray:
        for lab in reversed(self.state.versions):
            if lab.points is not None and np.isfinite(lab.points[i]).all():
                return lab.points[i].copy()
        sc = self.state.scores
        if sc is not None and sc.predicted(i):
            return sc.prediction[i].copy()
        s = self.state.sample
        return np.array([(s.width - 1) / 2.0, (s.height - 1) / 2.0])

    def swap_sides(self) -> None:
        """S: exchange every left/right pair of the schema (a label whose sides are
        swapped)."""
        pv = self._points()
        if pv is None:
            return
        if not self.schema.flip_pairs:
            self.message.emit("This schema names no left/right pairs to swap")
            return
        perm = self.schema.flip_permutation()
        pts, vis = pv
        self._commit_label(Targets(pts[perm], vis[perm]), "swapped left and right",
                           select=self.canvas.selected)

    def _accept(self, indices: list[int], description: str, select: int | None) -> None:
        st = self.state
        sc = st.scores
        pv = self._points()
        if pv is None or sc is None or sc.prediction is None:
            return
        indices = [i for i in indices if sc.predicted(i)]
        if not indices:
            return
        pts, vis = pv
        for i in indices:
            pts[i] = sc.prediction[i]
            if vis[i] == 0:
                vis[i] = 2
        self._commit_label(Targets(pts, vis), description, origin="model", select=select)

    def accept_selected(self) -> None:
        """A: accept the model's estimate for the selected landmark (none selected: the
        worst open flag), then select the next open flag; for an age, the model's age."""
        st = self.state
        if st is None or st.scores is None or st.scores.prediction is None:
            return
        if st.label.points is None:
            pred = float(st.scores.prediction[0])
            self._commit_label(Targets(age=round(pred, 1)), "accepted model age", origin="model")
            return
        i = self.canvas.selected
        if i < 0:
            order = st.flagged_order()
            if not order:
                return
            i = order[0]
        rest = [j for j in st.flagged_order() if j != i]
        self._accept([i], f"accepted model for {self._name(i)}", rest[0] if rest else i)

    def accept_flagged(self) -> None:
        """Shift+A: accept the model's estimate for every open flag."""
        st = self.state
        if st is None:
            return
        flagged = st.flagged_order()
        if not flagged:
            self.message.emit("No flagged landmark left on this sample")
            return
        self._accept(flagged, f"accepted model for {len(flagged)} flagged landmarks",
                     flagged[0])

    def accept_every(self) -> None:
        """Ctrl+Shift+A: the model's estimate for every landmark it has one for (a label
        that is wrong throughout, e.g. another face's)."""
        st = self.state
        if st is None or st.scores is None or st.label.points is None:
            return
        every = [i for i in range(st.n_keypoints) if st.labelled[i]]
        self._accept(every, "accepted the model's estimate for every landmark",
                     self.canvas.selected)

    def set_age(self, age: float) -> None:
        st = self.state
        if st is None or st.label.points is not None:
            return
        if st.label.age is not None and abs(float(st.label.age) - age) < 1e-9:
            return
        self._commit_label(Targets(age=float(age)), f"age {age:g}")

    def restore_version(self, version: int) -> None:
        """Make version ``version`` (1-based) of the sample's label the current one (a new
        version: the history keeps every step)."""
        st = self.state
        if st is None or not 1 <= version <= len(st.versions):
            return
        if version == len(st.versions):
            return
        old = st.versions[version - 1]
        self._commit_label(Targets.of(old), f"restored version {version}",
                           select=self.canvas.selected)

    # ------------------------------------------------------------------ review
    def _review(self, status: str, description: str) -> None:
        st = self.state
        if st is None:
            return
        sid = st.sample.id
        before = st.status
        try:
            self.project.set_review(sid, status, author=self.annotator, note=description,
                                    replaces=before)
        except (ProjectError, sqlite3.Error) as exc:
            self._not_saved(exc)
            return
        self.history.push(Edit(sid, description, before, status))
        self._file_undo = None
        self.edited.emit(sid, status)
        self.history_changed.emit()
        if self.auto_advance:
            self.next_requested.emit()
        if self.state is not None and self.state.sample.id == sid:
            self._reload(self.canvas.selected)

    def review_many(self, sample_ids: list[int], status: str) -> Any:
        """Set the review status of many samples (the queue's batch confirm/exclude):
        written by a worker (one small transaction each, off the GUI thread), then one
        undo step. Returns the worker."""
        if self.project is None or not sample_ids:
            return None
        from app.workers import Worker

        w = Worker(write_reviews, list(sample_ids), status, self.annotator, name="batch-review",
                   project_path=self.project.path)
        w.done.connect(self._reviewed_many)
        w.start()
        self._batch_worker = w  # kept alive until it reports
        return w

    def _reviewed_many(self, done: list[tuple[int, str, str, str]]) -> None:
        edits = tuple(Edit(sid, note, before, after) for sid, before, after, note in done)
        if not edits or self.project is None:
            return
        self.history.push(Batch(edits, f"{len(edits)} samples: {edits[0].status_after}"))
        self._file_undo = None
        for e in edits:
            self.edited.emit(e.sample_id, e.status_after)
        if self.state is not None and any(e.sample_id == self.state.sample.id for e in edits):
            self._reload(self.canvas.selected)
        self.history_changed.emit()
        self.message.emit(f"{len(edits)} samples {edits[0].status_after}")

    def confirm(self) -> None:
        self._review("confirmed", "label is right")

    def exclude(self) -> None:
        self._review("excluded", "excluded")

    # ------------------------------------------------------------------ undo
    def _after_history(self, edit: Edit | Batch | None, undo: bool) -> None:
        if edit is None:
            return
        for e in (edit.edits if isinstance(edit, Batch) else (edit,)):
            self.edited.emit(e.sample_id, e.status_before if undo else e.status_after)
        if isinstance(edit, Batch):  # stay where the annotator is; redraw its status
            if self.state is not None:
                self._reload(self.canvas.selected)
        else:
            self.show_sample(edit.sample_id)
        self.history_changed.emit()
        refused = edit.refused if isinstance(edit, Batch) else ()
        self.message.emit(("Undone: " if undo else "Redone: ") + edit.description
                          + (f" (not {len(refused)} changed since: {refused[0]})"
                             if refused else ""))

    def _file_changes(self) -> list[Change]:
        st = self.state
        return [c for c in timeline(st.versions, self.project.review_history(st.sample.id))
                if c.undoable]

    def undo(self) -> None:
        """Ctrl+Z: the session's last edit; with none left, the shown sample's last change
        in the file (an earlier session's, or another annotator's), step by step."""
        if self.project is None:
            return
        try:
            self._undo()
        except (ProjectError, sqlite3.Error) as exc:
            self._not_saved(exc, "Not undone")
        self._update_enabled()

    def _undo(self) -> None:
        if self.history.can_undo():
            self._after_history(self.history.undo(self.project, self.annotator), True)
        elif self.state is not None:
            changes = self._file_changes()
            sid = self.state.sample.id
            cursor = self._file_undo if self._file_undo and self._file_undo[0] == sid else None
            n = cursor[1] if cursor else len(changes)
            if n <= 0:
                self.message.emit("Nothing left to undo on this sample")
                return
            # from what is shown now back to the state before that change (checked
            # against what is shown: refused if someone else changed the sample since)
            st = self.state
            edit = changes[n - 1].as_edit(sid)
            edit = replace(edit, status_after=st.status)
            if edit.before is not None:
                edit = replace(edit, after=Targets.of(st.label), label_after=st.label.id)
            edit = apply_edit(self.project, edit, undo=True, author=self.annotator)
            self.history.push_undone(edit)
            self._after_history(edit, True)
            # the undo appended a change at the end; the next one takes the change before
            self._file_undo = (sid, n - 1)

    def redo(self) -> None:
        if self.project is not None:
            try:
                self._after_history(self.history.redo(self.project, self.annotator), False)
            except (ProjectError, sqlite3.Error) as exc:
                self._not_saved(exc, "Not redone")
            self._update_enabled()
