"""The sample editor: canvas + header + side card, and the edit commands.

Every command is committed at once through the GUI thread's project
connection (one small transaction each) under the annotator's name, and pushed
on the cross-sample undo history.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.review.canvas import LandmarkCanvas
from app.review.history import Edit, EditHistory, Targets
from app.review.images import ImageCache
from app.review.queue_model import STATUS_LABELS, score_color
from app.widgets import scrolling
from core.project import ProjectError, ScoreRow


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _real_std(std: Any) -> float | None:
    """The run's stored spread of an age estimate, if it is a real, positive number
    that shows at one decimal (a missing, NaN or zero spread gets no "±")."""
    if not std:
        return None
    try:
        v = float(std[0])
    except (TypeError, ValueError, IndexError):
        return None
    return v if math.isfinite(v) and v >= 0.05 else None


def _fields(score: ScoreRow | None) -> dict[str, Any]:
    """A stored score row's fields by name ({} when the sample has none)."""
    return {} if score is None else {f.name: getattr(score, f.name) for f in fields(score)}


def role_label(text: str, role: str) -> QLabel:
    """A label styled by the theme's ``role`` property (muted, value, ...)."""
    label = QLabel(text)
    label.setProperty("role", role)
    return label


class EditorWidget(QWidget):
    sample_shown = Signal(int)
    edited = Signal(int, str)  # sample_id, new review status
    next_requested = Signal()
    previous_requested = Signal()

    def __init__(self, annotator: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._annotator = annotator
        self.project: Any = None
        self.schema: Any = None
        self.run_id: int | None = None
        self.sample: Any = None
        self.label: Any = None
        self.score: dict[str, Any] | None = None
        self.history = EditHistory()
        self.images = ImageCache(self)
        self.images.loaded.connect(self._on_image)
        self.images.failed.connect(self._on_image_failed)
        self.auto_advance = True
        self.last_switch_ms = 0.0
        self._setup_actions()
        self._setup_ui()
        self._update_enabled()
        theme.on_change(self._retheme)

    def _retheme(self) -> None:
        self.canvas.apply_theme()
        if self.sample is not None:
            self._show_label()

    # ------------------------------------------------------------------ setup
    def _action(self, name: str, text: str, icon: str, keys: list[str],
                slot: Callable[[], None], tip: str = "") -> QAction:
        a = theme.bind_icon(QAction(text, self), icon)
        a.setShortcuts([QKeySequence(k) for k in keys])
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        keytxt = ", ".join(keys)
        a.setToolTip(f"{tip or text} ({keytxt})" if keys else (tip or text))
        a.triggered.connect(slot)
        a.setObjectName(name)
        self.actions_by_name[name] = a
        self.addAction(a)
        return a

    def _setup_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        self._action("previous", "Previous", "previous", ["K", "Left"],
                     self.previous_requested.emit, "Previous sample in the queue")
        self._action("next", "Next", "next", ["J", "Right"], self.next_requested.emit,
                     "Next sample in the queue")
        self._action("accept", "Accept", "accept", ["A"], self.accept_selected,
                     "Accept the model's suggestion for the selected landmark")
        self._action("accept_all", "Accept flagged", "accept-all", ["Shift+A"],
                     self.accept_flagged, "Accept the model's suggestion for every flagged landmark")
        self._action("confirm", "Label is right", "confirm", ["C"], self.confirm,
                     "Confirm the stored label is right")
        self._action("exclude", "Exclude", "exclude", ["X"], self.exclude,
                     "Exclude the sample from training and export")
        self._action("undo", "Undo", "undo", ["Ctrl+Z"], self.undo, "Undo the last edit")
        self._action("redo", "Redo", "redo", ["Ctrl+Shift+Z", "Ctrl+Y"], self.redo,
                     "Redo the last undone edit")
        self._action("fit", "Fit", "fit", ["F"], lambda: self.canvas.fit(), "Fit image to view")
        a = self._action("predictions", "All predictions", "accept-all", ["P"],
                         lambda: self.canvas.set_show_all_predictions(
                             self.actions_by_name["predictions"].isChecked()),
                         "Show the model's estimate of every landmark, not only flagged ones")
        a.setCheckable(True)
        self._action("zoom_in", "Zoom in", "zoom-in", ["+", "="], lambda: self.canvas.zoom(1.25))
        self._action("zoom_out", "Zoom out", "zoom-out", ["-"], lambda: self.canvas.zoom(0.8))

    def _tool(self, name: str) -> QToolButton:
        b = QToolButton()
        b.setDefaultAction(self.actions_by_name[name])
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        b.setAutoRaise(True)
        return b

    def _setup_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)

        bar = QFrame()
        bar.setProperty("role", "bar")
        hb = QHBoxLayout(bar)
        hb.setContentsMargins(10, 6, 10, 6)
        hb.setSpacing(4)
        hb.addWidget(self._tool("previous"))
        hb.addWidget(self._tool("next"))
        self.title = role_label("No sample", "title")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        hb.addSpacing(8)
        hb.addWidget(self.title, 1)
        self.status_chip = role_label("", "chip")
        hb.addWidget(self.status_chip)
        hb.addSpacing(8)
        self._text_tools = []
        for name in ("accept", "accept_all", "confirm", "exclude"):
            self._text_tools.append(self._tool(name))
            hb.addWidget(self._text_tools[-1])
        hb.addSpacing(6)
        for name in ("undo", "redo", "fit"):
            b = self._tool(name)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
            hb.addWidget(b)
        root.addWidget(bar)

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        self.canvas = LandmarkCanvas()
        self.canvas.landmark_moved.connect(self.move_landmark)
        self.canvas.selection_changed.connect(lambda _i: self._update_side())
        self.canvas.hovered.connect(self._on_hover)
        body.addWidget(self.canvas, 1)
        body.addWidget(scrolling(self._setup_side()))
        root.addLayout(body, 1)

        self.hint = role_label("", "muted")
        self.hint.setContentsMargins(10, 4, 10, 4)
        self.hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.hint.setText(self._default_hint())
        root.addWidget(self.hint)

    def _default_hint(self) -> str:
        if self.schema is not None and self.schema.task == "age":
            return ("J/K next/previous · type the age and press Enter · C label is right · "
                    "X exclude · Ctrl+Z undo")
        return ("J/K next/prev · drag a point to move it · A accept suggestion · "
                "Shift+A accept flagged · C right · X exclude · Ctrl+Z undo · F fit")

    def _setup_side(self) -> QWidget:
        side = QFrame()
        side.setProperty("role", "card")
        side.setFixedWidth(230)
        v = QVBoxLayout(side)
        v.setContentsMargins(12, 12, 12, 12)
        v.setSpacing(10)

        head = role_label("Sample", "muted")
        v.addWidget(head)
        form = QFormLayout()
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(4)
        self.f_id = QLabel("–")
        self.f_split = QLabel("–")
        self.f_score = QLabel("–")
        self.f_prob = QLabel("–")
        self.f_version = QLabel("–")
        self.f_version.setWordWrap(True)
        form.addRow("Id", self.f_id)
        form.addRow("Split", self.f_split)
        form.addRow("Outlier score", self.f_score)
        form.addRow("P(wrong)", self.f_prob)
        form.addRow("Label", self.f_version)
        v.addLayout(form)

        self.side_stack = QStackedWidget()
        # landmarks page
        lm = QWidget()
        lv = QVBoxLayout(lm)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.setSpacing(6)
        h2 = role_label("Landmark", "muted")
        lv.addWidget(h2)
        self.f_landmark = QLabel("Click a point to select it")
        self.f_landmark.setWordWrap(True)
        self.f_landmark.setTextFormat(Qt.TextFormat.RichText)
        lv.addWidget(self.f_landmark)
        self.f_flagged = QLabel("")
        self.f_flagged.setWordWrap(True)
        self.f_flagged.setProperty("role", "muted")
        lv.addWidget(self.f_flagged)
        legend = QLabel()
        legend.setTextFormat(Qt.TextFormat.RichText)
        legend.setWordWrap(True)
        c = theme.colors()
        legend.setText(
            f"<span style='color:{score_color(0.0)}'>●</span> likely right<br>"
            f"<span style='color:{score_color(0.5)}'>●</span> unsure<br>"
            f"<span style='color:{score_color(1.0)}'>●</span> likely wrong<br>"
            f"<span style='color:{c.ghost}'>◌</span> model's estimate, dotted line<br>"
            f"<span style='color:{c.muted}'>— skeleton</span>")
        lv.addStretch(1)
        lv.addWidget(legend)
        self.side_stack.addWidget(lm)
        # age page
        ag = QWidget()
        av = QVBoxLayout(ag)
        av.setContentsMargins(0, 0, 0, 0)
        av.setSpacing(6)
        a1 = role_label("Stored age", "muted")
        av.addWidget(a1)
        self.f_age = role_label("–", "value")
        av.addWidget(self.f_age)
        a2 = role_label("Model's estimate", "muted")
        av.addWidget(a2)
        self.f_age_pred = role_label("–", "value")
        av.addWidget(self.f_age_pred)
        self.f_age_run = role_label("", "muted")
        av.addWidget(self.f_age_run)
        a3 = role_label("New age", "muted")
        av.addWidget(a3)
        row = QHBoxLayout()
        self.age_spin = QDoubleSpinBox()
        self.age_spin.setRange(0, 150)
        self.age_spin.setDecimals(1)
        self.age_spin.setSingleStep(1)
        self.age_spin.setKeyboardTracking(False)
        row.addWidget(self.age_spin, 1)
        self.age_save = QPushButton("Save")
        self.age_save.setProperty("primary", True)
        self.age_save.clicked.connect(lambda: self.set_age(self.age_spin.value()))
        row.addWidget(self.age_save)
        av.addLayout(row)
        self.age_use_pred = QPushButton("Use model's estimate")
        self.age_use_pred.clicked.connect(self.accept_selected)
        av.addWidget(self.age_use_pred)
        av.addStretch(1)
        self.side_stack.addWidget(ag)
        v.addWidget(self.side_stack, 1)
        return side

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        compact = event.size().width() < 1020
        style = (Qt.ToolButtonStyle.ToolButtonIconOnly if compact
                 else Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for b in self._text_tools:
            b.setToolButtonStyle(style)
        super().resizeEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: ANN001
        if (self.age_spin.hasFocus() or self.age_spin.isAncestorOf(self.focusWidget())) and \
                event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.set_age(self.age_spin.value())
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------ project
    def set_project(self, project: Any) -> None:
        self.project = project
        if project is not None:
            self.images.start()
        self.schema = None if project is None else project.schema
        self.history.clear()
        self.sample = self.label = self.score = None
        self.canvas.set_landmarks(None)
        self.canvas.set_image(None, size=(1, 1))
        self.title.setText("No sample" if project is None else "Select a sample in the queue")
        is_age = self.schema is not None and self.schema.task == "age"
        self.side_stack.setCurrentIndex(1 if is_age else 0)
        self.canvas.editable = not is_age
        self.hint.setText(self._default_hint())
        self._update_side()
        self._update_enabled()

    def close_project(self) -> None:
        self.images.close()
        self.set_project(None)

    @property
    def annotator(self) -> str:
        return self._annotator()

    # ------------------------------------------------------------------ showing
    def prefetch(self, sample_ids: list[int]) -> None:
        for sid in sample_ids:
            with contextlib.suppress(ProjectError):  # a vanished neighbour is no error
                self.images.request(self.project.sample(sid).image_path)

    def show_sample(self, sample_id: int, prefetch: list[int] | None = None) -> None:
        if self.project is None:
            return
        t0 = time.perf_counter()
        self.hint.setText(self._default_hint())  # drop a previous sample's image error
        p = self.project
        self.sample = p.sample(sample_id)
        self.label = p.current_label(sample_id)
        self.score = p.sample_score(sample_id, self.run_id)
        hit = self.images.get(self.sample.image_path)
        size = (self.sample.width, self.sample.height)
        if hit is None:
            self.canvas.set_image(None, size=size)
        else:
            self.canvas.set_image(hit[0], hit[1], size=size)
        self._show_label(keep_selection=False)
        if prefetch:
            self.prefetch(prefetch)
        self.last_switch_ms = (time.perf_counter() - t0) * 1000
        self.sample_shown.emit(sample_id)

    def _show_label(self, keep_selection: bool = True) -> None:
        sel = self.canvas.selected
        sc = _fields(self.score)
        pred = sc.get("prediction")
        if self.schema is not None and self.schema.task == "landmarks":
            k = self.schema.n_keypoints
            pred_arr = None
            if pred is not None and len(pred) == 2 * k:
                pred_arr = np.asarray(pred, dtype=np.float64).reshape(k, 2)
            self.canvas.set_landmarks(self.label.points, self.schema.keypoints,
                                      sc.get("landmark_scores"), sc.get("landmark_probs"),
                                      pred_arr, self.schema.skeleton)
            if keep_selection and 0 <= sel < k:
                self.canvas.select(sel)
            elif not keep_selection:
                flagged = self.canvas.flagged()
                if flagged:
                    worst = max(flagged, key=lambda i: self.canvas.outlier_prob(i) or 0)
                    self.canvas.select(worst)
        else:
            self.canvas.set_landmarks(None)
        self._update_header()
        self._update_side()
        self._update_enabled()

    def _on_image(self, path: str) -> None:
        if self.sample is not None and str(self.sample.image_path) == path:
            hit = self.images.get(path)
            if hit is not None:
                self.canvas.set_image(hit[0], hit[1], size=(self.sample.width, self.sample.height))

    def _on_image_failed(self, path: str, error: str) -> None:
        if self.sample is not None and str(self.sample.image_path) == path:
            self.hint.setText(f"Cannot show the image: {error}")

    def _update_header(self) -> None:
        s = self.sample
        if s is None:
            self.status_chip.setText("")
            return
        self.title.setText(s.path)
        self.title.setToolTip(str(s.image_path))
        status = self.project.sample(s.id).review_status
        self.status_chip.setText(STATUS_LABELS.get(status, status))

    def _update_side(self) -> None:
        s, lab, sc = self.sample, self.label, _fields(self.score)
        if s is None or lab is None:
            for w in (self.f_id, self.f_split, self.f_score, self.f_prob, self.f_version):
                w.setText("–")
            self.f_landmark.setText("")
            self.f_flagged.setText("")
            return
        self.f_id.setText(f"#{s.id}  ({s.width}×{s.height})")
        self.f_split.setText(s.split)
        self.f_score.setText(_fmt(sc.get("score")))
        prob = sc.get("outlier_prob")
        self.f_prob.setText(_fmt(None if prob is None else prob * 100, ".0f") + " %"
                            if prob is not None else "–")
        n_versions = len(self.project.label_history(s.id))
        who = lab.author if lab.author and lab.author != lab.origin else ""
        self.f_version.setText(f"v{n_versions} · {lab.origin}" + (f" · {who}" if who else ""))
        if self.schema is not None and self.schema.task == "age":
            self.f_age.setText(_fmt(lab.age, ".1f"))
            pred = sc.get("prediction")
            if pred:
                txt = f"{pred[0]:.1f}"
                std = _real_std(sc.get("prediction_std"))
                if std is not None:
                    txt += f" ± {std:.1f}"
                self.f_age_pred.setText(txt)
                run = sc.get("run_id")
                self.f_age_run.setText(self._run_name(run))
            else:
                self.f_age_pred.setText("no run yet")
                self.f_age_run.setText("")
            self.age_use_pred.setEnabled(bool(pred))
            if lab.age is not None:
                self.age_spin.blockSignals(True)
                self.age_spin.setValue(float(lab.age))
                self.age_spin.blockSignals(False)
            return
        i = self.canvas.selected
        if 0 <= i < len(self.canvas.points):
            name = self.canvas._name(i)
            x, y = self.canvas.points[i]
            lsc = sc.get("landmark_scores")
            p = self.canvas.outlier_prob(i)
            txt = f"<b>{name}</b> (#{i})<br>stored ({_fmt(x, '.1f')}, {_fmt(y, '.1f')})"
            pr = self.canvas.prediction
            if pr is not None and np.isfinite(pr[i]).all():
                txt += f"<br>model ({pr[i][0]:.1f}, {pr[i][1]:.1f})"
                if np.isfinite([x, y]).all():
                    txt += f"<br>distance {math.hypot(pr[i][0] - x, pr[i][1] - y):.1f} px"
            if lsc is not None and i < len(lsc):
                txt += f"<br>outlier score {_fmt(lsc[i])}"
            if p is not None:
                txt += f"  <span style='color:{score_color(p)}'>({p:.0%} wrong)</span>"
            self.f_landmark.setText(txt)
        else:
            self.f_landmark.setText("Click a point to select it")
        flagged = self.canvas.flagged()
        self.f_flagged.setText(f"{len(flagged)} flagged landmark(s)" if self.score else
                               "No scores yet: train a model to flag landmarks")

    def _run_name(self, run_id: Any) -> str:
        if run_id is None:
            return ""
        try:
            method = self.project.run(int(run_id)).method
        except ProjectError:
            method = None
        return f"from run {run_id}" + (f" ({method})" if method else "")

    def _on_hover(self, i: int) -> None:
        if i < 0:
            self.hint.setText(self._default_hint())
            return
        p = self.canvas.outlier_prob(i)
        self.hint.setText(f"{self.canvas._name(i)} (#{i})"
                          + (f" · P(wrong) {p:.0%}" if p is not None else ""))

    def _update_enabled(self) -> None:
        has = self.sample is not None
        is_lm = self.schema is not None and self.schema.task == "landmarks"
        a = self.actions_by_name
        a["accept"].setEnabled(has and self.score is not None and bool(self.score.prediction))
        a["accept_all"].setEnabled(has and is_lm and bool(self.canvas.flagged()))
        a["confirm"].setEnabled(has)
        a["exclude"].setEnabled(has)
        a["undo"].setEnabled(self.history.can_undo())
        a["redo"].setEnabled(self.history.can_redo())

    # ------------------------------------------------------------------ commands
    def _status(self) -> str:
        return str(self.project.sample(self.sample.id).review_status)

    def _commit_label(self, targets: Targets, description: str, origin: str = "annotator") -> None:
        sid = self.sample.id
        before = Targets.of(self.label)
        status_before = self._status()
        try:  # compare-and-append: refused if someone else changed the sample meanwhile
            lid = self.project.add_label(sid, points=targets.points, visibility=targets.visibility,
                                         age=targets.age, origin=origin, author=self.annotator,
                                         note=description, replaces=self.label.id)
        except (ProjectError, sqlite3.Error) as exc:
            self._not_saved(sid, exc)
            return
        self.history.push(Edit(sid, description, status_before, "fixed", before, targets,
                               self.label.id, lid))
        self.label = self.project.current_label(sid)
        self.edited.emit(sid, "fixed")

    def _not_saved(self, sid: int, exc: Exception) -> None:
        """An edit the file refused (another annotator's newer version, a locked or
        read-only file): show the stored label again, so the marker goes back, and why."""
        with contextlib.suppress(ProjectError, sqlite3.Error):
            self.label = self.project.current_label(sid)
        self._show_label()
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.hint.setText(f"Not saved: {why}")
        self.hint.setToolTip(str(exc))

    def move_landmark(self, i: int, x: float, y: float) -> None:
        """Move landmark ``i`` to (x, y) image pixels and commit a new label version."""
        if self.sample is None or self.label is None or self.label.points is None:
            return
        pts = self.label.points.copy()
        pts[i] = (x, y)
        vis = None if self.label.visibility is None else self.label.visibility.copy()
        if vis is not None and vis[i] == 0:
            vis[i] = 2
        self._commit_label(Targets(pts, vis), f"moved {self.canvas._name(i)}")
        self.canvas.select(i)
        self._show_label()

    def _accept(self, indices: list[int], description: str) -> None:
        pred = self.canvas.prediction
        if pred is None or not indices or self.label.points is None:
            return
        pts = self.label.points.copy()
        vis = None if self.label.visibility is None else self.label.visibility.copy()
        for i in indices:
            pts[i] = pred[i]
            if vis is not None and vis[i] == 0:
                vis[i] = 2
        self._commit_label(Targets(pts, vis), description, origin="model")
        self._show_label()

    def accept_selected(self) -> None:
        """Accept the model's suggestion: the selected landmark (or the worst flagged one);
        for ages, the model's estimate."""
        if self.sample is None or not self.score or not self.score.prediction:
            return
        if self.schema.task == "age":
            pred = float(self.score.prediction[0])
            self._commit_label(Targets(age=round(pred, 1)), "accepted model age", origin="model")
            self._show_label()
            return
        i = self.canvas.selected
        if i < 0:
            flagged = self.canvas.flagged()
            if not flagged:
                return
            i = max(flagged, key=lambda j: self.canvas.outlier_prob(j) or 0)
        self._accept([i], f"accepted model for {self.canvas._name(i)}")
        self.canvas.select(i)

    def accept_flagged(self) -> None:
        if self.sample is None:
            return
        flagged = self.canvas.flagged()
        self._accept(flagged, f"accepted model for {len(flagged)} flagged landmarks")

    def set_age(self, age: float) -> None:
        if self.sample is None or self.label is None:
            return
        if self.label.age is not None and abs(float(self.label.age) - age) < 1e-9:
            return
        self._commit_label(Targets(age=float(age)), f"age {age:g}")
        self._show_label()

    def _review(self, status: str, description: str) -> None:
        if self.sample is None:
            return
        sid = self.sample.id
        before = self._status()
        try:
            self.project.set_review(sid, status, author=self.annotator, note=description,
                                    replaces=before)
        except (ProjectError, sqlite3.Error) as exc:
            self._not_saved(sid, exc)
            return
        self.history.push(Edit(sid, description, before, status))
        self.edited.emit(sid, status)
        self._update_header()
        self._update_enabled()
        if self.auto_advance:
            self.next_requested.emit()

    def confirm(self) -> None:
        self._review("confirmed", "label is right")

    def exclude(self) -> None:
        self._review("excluded", "excluded")

    def _after_history(self, edit: Edit | None, undo: bool) -> None:
        if edit is None:
            return
        status = edit.status_before if undo else edit.status_after
        self.edited.emit(edit.sample_id, status)
        self.show_sample(edit.sample_id)

    def undo(self) -> None:
        if self.project is not None:
            try:
                self._after_history(self.history.undo(self.project, self.annotator), True)
            except (ProjectError, sqlite3.Error) as exc:
                self._history_refused("Not undone", exc)
            self._update_enabled()

    def redo(self) -> None:
        if self.project is not None:
            try:
                self._after_history(self.history.redo(self.project, self.annotator), False)
            except (ProjectError, sqlite3.Error) as exc:
                self._history_refused("Not redone", exc)
            self._update_enabled()

    def _history_refused(self, what: str, exc: Exception) -> None:
        """Someone else changed the sample since: show it as stored now, and why."""
        if self.sample is not None:
            with contextlib.suppress(ProjectError, sqlite3.Error):
                self.show_sample(self.sample.id)
        self.hint.setText(f"{what}: {str(exc).splitlines()[0]}")
