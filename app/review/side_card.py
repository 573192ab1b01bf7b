"""The editor's side card: the sample, the selected landmark, the list of
landmarks (click to select; flagged and reviewed ones marked), or for an age
project the stored age, the model's estimate and a spin box."""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QIcon, QPainter, QPixmap
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
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.review.scores import ISSUE_FIXES, ISSUE_HINTS
from app.review.state import SampleState
from app.review.timeline import VISIBILITY

WIDTH = 250
AGE_SPREAD_MAX = 30.0  # years: a wider spread of the model's age reads as "unsure"
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


class PointModel(QAbstractTableModel):
    """The landmark list's rows (name with its marks, the run's doubt), replaced in
    one go per sample: one signal, not one per cell (68 cells cost 17 ms)."""

    HEADERS = ("Point", "P(wrong)")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[str, str, QIcon, str]] = []  # name, doubt, dot, doubt colour
        self.doubt_header = "P(wrong)"

    def set_rows(self, rows: list[tuple[str, str, QIcon, str]], doubt_header: str) -> None:
        if len(rows) != len(self.rows):
            self.beginResetModel()
            self.rows = rows
            self.endResetModel()
        else:
            self.rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, 1))
        if doubt_header != self.doubt_header:
            self.doubt_header = doubt_header
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, 1, 1)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else 2

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[0] if section == 0 else self.doubt_header
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        name, doubt, icon, colour = self.rows[index.row()]
        c = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return name if c == 0 else doubt
        if role == Qt.ItemDataRole.DecorationRole and c == 0:
            return icon
        if role == Qt.ItemDataRole.ForegroundRole and c == 1:
            return QBrush(QColor(colour))
        if role == Qt.ItemDataRole.TextAlignmentRole and c == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class PointList(QTableView):
    """The landmark list. It asks for little height: the card's scroll area sizes the
    card by its preferred height, and the list takes whatever room is left."""

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(super().sizeHint().width(), 96)


class SideCard(QFrame):
    point_clicked = Signal(int)
    age_entered = Signal(float)
    use_model_age = Signal()
    fix_requested = Signal(str)  # the editor action that fixes the run's named error

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
        self.f_issue = QLabel("")
        self.f_issue.setWordWrap(True)
        self.f_issue.hide()
        v.addWidget(self.f_issue)
        # the suggestion for the named error, one click (or the key it names) away
        self.fix_btn = QPushButton("")
        self.fix_btn.setProperty("role", "accent")
        self.fix_btn.hide()
        self.fix_btn.clicked.connect(lambda: self.fix_requested.emit(self._fix))
        self._fix = ""
        self.can_fix: Callable[[str], bool] = lambda _action: True  # set by the editor
        v.addWidget(self.fix_btn)
        self.stack = QStackedWidget()
        self.stack.addWidget(self._landmarks_page())
        self.stack.addWidget(self._age_page())
        v.addWidget(self.stack, 1)
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
        self.points = PointList()
        self.point_model = PointModel(self)
        self.points.setModel(self.point_model)
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
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        self.points.setColumnWidth(1, self.points.fontMetrics().horizontalAdvance(
            "9.9× typical") + 12)
        hh.setHighlightSections(False)
        self.points.clicked.connect(lambda idx: self.point_clicked.emit(idx.row()))
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
        self.f_age_run.setWordWrap(True)  # "from run 3 (deepgum) · unsure (± 366 years)"
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
        self.point_model.set_rows([], self.point_model.doubt_header)

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
        issue = None if sc is None else sc.issue
        open_issue = bool(issue) and st.status == "unreviewed"
        self.f_issue.setVisible(open_issue)
        if issue:
            self.f_issue.setText(f"Likely: {ISSUE_HINTS.get(issue, issue)}")
        fix = ISSUE_FIXES.get(issue or "") if open_issue else None
        if fix is not None and not self.can_fix(fix[0]):
            fix = None  # e.g. a swap in a schema without left/right pairs
        self._fix = "" if fix is None else fix[0]
        self.fix_btn.setText("" if fix is None else fix[1])
        self.fix_btn.setToolTip("The fix for the error the run names" if fix else "")
        self.fix_btn.setVisible(fix is not None)
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
            unsure = std is not None and std > AGE_SPREAD_MAX
            if std is not None and not unsure:
                txt += f" ± {std:.1f}"
            self.f_age_pred.setText(txt)
            # a spread wider than a lifetime says nothing: the model is unsure here
            self.f_age_run.setText(run_name + (f" · unsure (± {std:.0f} years)" if unsure
                                               else ""))
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
        sc = st.scores
        reviewed, open_flags, labelled = st.reviewed, st.open_flags, st.labelled
        vis = st.label.visibility
        c = theme.colors()
        rows = []
        for i in range(k):
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
            rows.append((mark + name, text, dot(color, hollow=not labelled[i]),
                         color if level is not None or reviewed[i] else c.muted))
        header = "P(wrong)" if sc is None or sc.unit_probs is not None else "Residual"
        self.point_model.set_rows(rows, header)
        # the value column as wide as its texts (names are elided before them)
        fm = self.points.fontMetrics()
        bold = QFont(self.points.horizontalHeader().font())
        bold.setBold(True)  # the theme draws headers bold
        width = max(max(fm.horizontalAdvance(t) for t in {r[1] for r in rows} | {""}),
                    QFontMetrics(bold).horizontalAdvance(header) + 8) + 16
        if width != self.points.columnWidth(1):
            self.points.setColumnWidth(1, width)
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
        idx = self.point_model.index(i, 0)
        if self.points.currentIndex().row() != i:
            self.points.selectRow(i)
        self.points.scrollTo(idx, QAbstractItemView.ScrollHint.PositionAtCenter)
        name = html.escape(names[i] if i < len(names) else f"#{i}")
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
            txt += (f"<br>{what} <span style='color:{colour}'>{html.escape(sc.text(i))}"
                    f"{flag}</span>")
        self.f_point.setText(txt)
