"""The editor's side card: the sample, the selected landmark, the list of
landmarks (click to select; flagged and reviewed ones marked), or for an age
project the stored age, the model's estimate and a spin box."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.review.state import SampleState
from app.review.timeline import VISIBILITY

WIDTH = 250
STATUS_LABELS = {"unreviewed": "to review", "confirmed": "confirmed", "fixed": "fixed",
                 "excluded": "excluded"}


def role_label(text: str, role: str) -> QLabel:
    """A label styled by the theme's ``role`` property (muted, value, ...)."""
    label = QLabel(text)
    label.setProperty("role", role)
    return label


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _real_std(std: Any) -> float | None:
    """The run's stored spread of an age estimate, if it is a real, positive number
    that shows at one decimal (a missing, NaN or zero spread gets no "±")."""
    if std is None or not len(std):
        return None
    try:
        v = float(std[0])
    except (TypeError, ValueError, IndexError):
        return None
    return v if math.isfinite(v) and v >= 0.05 else None


_dots: dict[str, QIcon] = {}


def dot(color: str, hollow: bool = False) -> QIcon:
    key = color + ("o" if hollow else "")
    icon = _dots.get(key)
    if icon is None:
        pm = QPixmap(12, 12)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if hollow:
            p.setPen(QColor(color))
            p.setBrush(Qt.BrushStyle.NoBrush)
        else:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QBrush(QColor(color)))
        p.drawEllipse(2, 2, 8, 8)
        p.end()
        icon = _dots[key] = QIcon(pm)
    return icon


class PointList(QTableWidget):
    """The landmark list. It asks for little height: the card's scroll area sizes the
    card by its preferred height, and the list takes whatever room is left."""

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(super().sizeHint().width(), 96)


class SideCard(QFrame):
    point_clicked = Signal(int)
    age_entered = Signal(float)
    use_model_age = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "card")
        self.setFixedWidth(WIDTH)
        v = QVBoxLayout(self)
        v.setContentsMargins(12, 10, 12, 10)
        v.setSpacing(8)
        form = QFormLayout()
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(3)
        self.f_id = QLabel("–")
        self.f_split = QLabel("–")
        self.f_doubt = QLabel("–")
        self.f_doubt.setToolTip("The run's probability that this sample's label is wrong")
        self.f_version = QLabel("–")
        self.f_version.setWordWrap(True)
        form.addRow(role_label("Sample", "muted"), self.f_id)
        form.addRow(role_label("Split", "muted"), self.f_split)
        self.doubt_label = role_label("P(wrong)", "muted")
        form.addRow(self.doubt_label, self.f_doubt)
        form.addRow(role_label("Label", "muted"), self.f_version)
        v.addLayout(form)
        self.stack = QStackedWidget()
        self.stack.addWidget(self._landmarks_page())
        self.stack.addWidget(self._age_page())
        v.addWidget(self.stack, 1)
        self._k = -1
        self.set_age_mode(False)

    # ------------------------------------------------------------------ pages
    def _landmarks_page(self) -> QWidget:
        page = QWidget()
        lv = QVBoxLayout(page)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.setSpacing(6)
        self.f_point = QLabel("Click a point to select it")
        self.f_point.setWordWrap(True)
        self.f_point.setTextFormat(Qt.TextFormat.RichText)
        lv.addWidget(self.f_point)
        self.f_flagged = role_label("", "muted")
        self.f_flagged.setWordWrap(True)
        lv.addWidget(self.f_flagged)
        self.points = PointList(0, 2)
        self.points.setHorizontalHeaderLabels(["Point", "P(wrong)"])
        self.points.verticalHeader().hide()
        self.points.verticalHeader().setDefaultSectionSize(20)
        self.points.setShowGrid(False)
        self.points.setWordWrap(False)
        self.points.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.points.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.points.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.points.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the editor
        hh = self.points.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setHighlightSections(False)
        self.points.cellClicked.connect(lambda r, _c: self.point_clicked.emit(r))
        self.points.setMinimumHeight(64)  # the list gives way before the card scrolls
        lv.addWidget(self.points, 1)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        lv.addWidget(self.legend)
        self.retheme()
        return page

    def _age_page(self) -> QWidget:
        page = QWidget()
        av = QVBoxLayout(page)
        av.setContentsMargins(0, 0, 0, 0)
        av.setSpacing(6)
        av.addWidget(role_label("Stored age", "muted"))
        self.f_age = role_label("–", "value")
        av.addWidget(self.f_age)
        av.addWidget(role_label("Model's estimate", "muted"))
        self.f_age_pred = role_label("–", "value")
        av.addWidget(self.f_age_pred)
        self.f_age_run = role_label("", "muted")
        av.addWidget(self.f_age_run)
        av.addWidget(role_label("New age", "muted"))
        row = QHBoxLayout()
        self.age_spin = QDoubleSpinBox()
        self.age_spin.setRange(0, 150)
        self.age_spin.setDecimals(1)
        self.age_spin.setSingleStep(1)
        self.age_spin.setKeyboardTracking(False)
        row.addWidget(self.age_spin, 1)
        self.age_save = QPushButton("Save")
        self.age_save.setProperty("primary", True)
        self.age_save.clicked.connect(lambda: self.age_entered.emit(self.age_spin.value()))
        row.addWidget(self.age_save)
        av.addLayout(row)
        self.age_use_pred = QPushButton("Use model's estimate")
        self.age_use_pred.clicked.connect(self.use_model_age.emit)
        av.addWidget(self.age_use_pred)
        av.addStretch(1)
        return page

    def retheme(self) -> None:
        c = theme.colors()
        self.legend.setText(
            f"<span style='color:{theme.level_color(0.0)}'>●</span> right&nbsp; "
            f"<span style='color:{theme.level_color(0.5)}'>●</span> unsure&nbsp; "
            f"<span style='color:{theme.level_color(1.0)}'>●</span> wrong<br>"
            f"<span style='color:{c.reviewed}'>●</span> reviewed&nbsp; "
            f"<span style='color:{c.ghost}'>◌</span> model's estimate")
        self.legend.setToolTip("Landmark colours: the run's doubt (green: likely right, amber: "
                               "unsure, red: likely wrong); purple: reviewed by an annotator; "
                               "dashed blue ring: the model's estimate; orange square: another "
                               "version (History)")

    # ------------------------------------------------------------------ content
    def set_age_mode(self, on: bool) -> None:
        self.stack.setCurrentIndex(1 if on else 0)
        # the hidden page must not hold the card's height up
        for i in range(self.stack.count()):
            pol = QSizePolicy.Policy.Preferred if i == self.stack.currentIndex() \
                else QSizePolicy.Policy.Ignored
            self.stack.widget(i).setSizePolicy(pol, pol)

    def clear(self) -> None:
        for w in (self.f_id, self.f_split, self.f_doubt, self.f_version):
            w.setText("–")
        self.f_point.setText("")
        self.f_flagged.setText("")
        self.points.setRowCount(0)
        self._k = -1

    def show_state(self, st: SampleState, names: tuple[str, ...], selected: int,
                   run_name: str) -> None:
        s, lab, sc = st.sample, st.label, st.scores
        self.f_id.setText(f"#{s.id}  ({s.width}×{s.height})")
        self.f_split.setText(s.split)
        if sc is None:
            self.f_doubt.setText("no run yet")
        else:
            self.f_doubt.setText(sc.sample_text() or "–")
            self.f_doubt.setStyleSheet("" if sc.level_sample() is None else
                                       f"color: {theme.level_color(sc.level_sample())}")
        self.doubt_label.setText("P(wrong)" if sc is None or sc.unit_probs is not None
                                 or sc.prob is not None else "Residual")
        who = lab.author if lab.author and lab.author != lab.origin else ""
        self.f_version.setText(f"v{len(st.versions)} · {lab.origin}" + (f" · {who}" if who else ""))
        if lab.points is None:
            self._show_age(st, run_name)
        else:
            self._fill_points(st, names)
            self.show_selected(st, names, selected)

    def _show_age(self, st: SampleState, run_name: str) -> None:
        lab, sc = st.label, st.scores
        self.f_age.setText(_fmt(lab.age))
        pred = None if sc is None or sc.prediction is None else sc.prediction
        if pred is not None and len(pred):
            txt = f"{pred[0]:.1f}"
            std = _real_std(sc.prediction_std)
            if std is not None:
                txt += f" ± {std:.1f}"
            self.f_age_pred.setText(txt)
            self.f_age_run.setText(run_name)
        else:
            self.f_age_pred.setText("no run yet")
            self.f_age_run.setText("")
        self.age_use_pred.setEnabled(pred is not None and len(pred) > 0)
        if lab.age is not None:
            self.age_spin.blockSignals(True)
            self.age_spin.setValue(float(lab.age))
            self.age_spin.blockSignals(False)

    def _fill_points(self, st: SampleState, names: tuple[str, ...]) -> None:
        k = st.n_keypoints
        t = self.points
        if self._k != k:
            t.setRowCount(k)
            for i in range(k):
                t.setItem(i, 0, QTableWidgetItem(names[i] if i < len(names) else f"#{i}"))
                item = QTableWidgetItem("")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                      | Qt.AlignmentFlag.AlignVCenter)
                t.setItem(i, 1, item)
            self._k = k
        sc = st.scores
        reviewed, open_flags, labelled = st.reviewed, st.open_flags, st.labelled
        vis = st.label.visibility
        c = theme.colors()
        t.horizontalHeaderItem(1).setText("P(wrong)" if sc is None or sc.unit_probs is not None
                                          else "Residual")
        for i in range(k):
            name_item, doubt_item = t.item(i, 0), t.item(i, 1)
            text = "" if sc is None else sc.text(i)
            level = None if sc is None else sc.level(i)
            if reviewed[i]:
                color, mark = c.reviewed, "✓ "
            elif level is not None:
                color, mark = theme.level_color(level), ("⚑ " if open_flags[i] else "")
            else:
                color, mark = c.accent, ""
            if not labelled[i]:
                text = VISIBILITY[0] if vis is None or vis[i] == 0 else text
            elif vis is not None and vis[i] == 1:
                mark += "◐ "
            name = names[i] if i < len(names) else f"#{i}"
            name_item.setText(mark + name)
            name_item.setIcon(dot(color, hollow=not labelled[i]))
            doubt_item.setText(text)
            doubt_item.setForeground(QBrush(QColor(color if level is not None or reviewed[i]
                                                   else c.muted)))
        n_flags = int(sc.flags.sum()) if sc is not None and len(sc.flags) == k else 0
        n_open = int(open_flags.sum())
        if sc is None:
            self.f_flagged.setText("No scores yet: train a model to flag landmarks")
        elif n_flags == 0:
            self.f_flagged.setText("The run flags no landmark here")
        else:
            done = n_flags - n_open
            self.f_flagged.setText(f"{n_open} of {n_flags} flagged landmark"
                                   f"{'s' if n_flags != 1 else ''} left"
                                   + (f" · {done} reviewed" if done else ""))

    def show_selected(self, st: SampleState, names: tuple[str, ...], i: int,
                      points: np.ndarray | None = None) -> None:
        """The selected landmark's card (``points``: as drawn, mid-drag)."""
        lab = st.label
        if lab.points is None:
            return
        pts = lab.points if points is None else points
        if not 0 <= i < len(pts):
            self.f_point.setText("Click a point, or Tab to the worst flagged one")
            self.points.clearSelection()
            return
        if self.points.currentRow() != i:
            self.points.blockSignals(True)
            self.points.selectRow(i)
            self.points.blockSignals(False)
        self.points.scrollToItem(self.points.item(i, 0),
                                 QAbstractItemView.ScrollHint.PositionAtCenter)
        name = names[i] if i < len(names) else f"#{i}"
        x, y = pts[i]
        vis = 2 if lab.visibility is None else int(lab.visibility[i])
        txt = f"<b>{name}</b> (#{i}) · {VISIBILITY.get(vis, '?')}"
        if np.isfinite([x, y]).all():
            txt += f"<br>stored ({x:.1f}, {y:.1f})"
        sc = st.scores
        c = theme.colors()
        if sc is not None and sc.predicted(i):
            px, py = sc.prediction[i]
            txt += f"<br>model ({px:.1f}, {py:.1f})"
            if np.isfinite([x, y]).all():
                txt += f", {math.hypot(px - x, py - y):.1f} px away"
        if st.reviewed[i]:
            txt += f"<br><span style='color:{c.reviewed}'>reviewed</span>"
        elif sc is not None and sc.text(i):
            level = sc.level(i)
            what = "P(wrong)" if sc.unit_probs is not None else "residual"
            colour = theme.level_color(level) if level is not None else c.text
            flag = " · flagged" if sc.flags[i] else ""
            txt += f"<br>{what} <span style='color:{colour}'>{sc.text(i)}{flag}</span>"
        self.f_point.setText(txt)
