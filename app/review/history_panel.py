"""The history dock: every version of the shown sample's label and every review
decision (who, when, origin, what moved by how many pixels), newest first.

Select one version to draw it on the canvas against the current label, two to
draw one against the other; "Restore this version" makes a selected version the
current one (as a new version, so the history keeps every step and Ctrl+Z
undoes the restore).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.review.side_card import STATUS_LABELS
from app.review.timeline import Change, describe, timeline

COLUMNS = ("Version", "When", "Who", "What", "Change")


def when_text(iso: str, now: datetime | None = None) -> str:
    """Local time: "14:02:33" today, "3 Dec 14:02" this year, else the date."""
    try:
        t = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    now = now or datetime.now().astimezone()
    if t.date() == now.date():
        return t.strftime("%H:%M:%S")
    if t.year == now.year:
        return t.strftime("%d %b %H:%M")
    return t.strftime("%Y-%m-%d")


class HistoryPanel(QWidget):
    diff_requested = Signal(object, object)  # points of version a, of version b (None: current)
    restore_requested = Signal(int)  # version number

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.changes: list[Change] = []
        self.names: tuple[str, ...] = ()
        self.sample_id: int | None = None
        self._current_version = 0
        v = QVBoxLayout(self)
        v.setContentsMargins(8, 6, 8, 6)
        v.setSpacing(6)
        top = QHBoxLayout()
        self.summary = QLabel("No sample")
        self.summary.setProperty("role", "muted")
        top.addWidget(self.summary, 1)
        self.restore_btn = QPushButton("Restore this version")
        self.restore_btn.setToolTip("Make the selected version the current label (a new "
                                    "version; Ctrl+Z undoes it)")
        self.restore_btn.clicked.connect(self._restore)
        top.addWidget(self.restore_btn)
        v.addLayout(top)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the editor keeps the keys
        hh = self.tree.header()
        hh.setStretchLastSection(True)
        for col, w in enumerate((64, 118, 96, 150)):
            self.tree.setColumnWidth(col, w)
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        v.addWidget(self.tree, 1)
        self.hint = QLabel("Select a version to draw it on the image against the current "
                           "label (squares: that version); Ctrl+click a second one to "
                           "compare two.")
        self.hint.setProperty("role", "muted")
        self.hint.setWordWrap(True)
        v.addWidget(self.hint)
        self._update_buttons()

    # ------------------------------------------------------------------ content
    def clear(self) -> None:
        self.sample_id = None
        self.changes = []
        self.tree.clear()
        self.summary.setText("No sample")
        self._update_buttons()

    def show_history(self, project: Any, sample_id: int, names: tuple[str, ...]) -> None:
        """Read and list the history of ``sample_id`` (two small queries)."""
        versions = project.label_history(sample_id)
        events = project.review_history(sample_id)
        same = sample_id == self.sample_id
        keep = self._selected_versions() if same else []
        self.sample_id, self.names = sample_id, names
        self.changes = timeline(versions, events)
        self._current_version = len(versions)
        self.tree.blockSignals(True)
        self.tree.clear()
        c = theme.colors()
        for ch in reversed(self.changes):
            item = QTreeWidgetItem(self._row(ch))
            item.setData(0, Qt.ItemDataRole.UserRole, ch.version if ch.kind == "label" else 0)
            item.setToolTip(4, ch.note)
            if ch.kind == "label" and ch.version == self._current_version:
                item.setText(0, f"v{ch.version} ●")
                item.setToolTip(0, "the current label")
            if ch.origin in ("annotator", "model"):
                item.setForeground(3, QBrush(QColor(c.reviewed)))
            self.tree.addTopLevelItem(item)
            if ch.kind == "label" and ch.version in keep:
                item.setSelected(True)
        self.tree.blockSignals(False)
        n_reviews = sum(1 for ch in self.changes if ch.kind == "review")
        self.summary.setText(f"{len(versions)} version{'s' if len(versions) != 1 else ''}"
                             f" · {n_reviews} review decision{'s' if n_reviews != 1 else ''}")
        self._on_selection()

    def _row(self, ch: Change) -> list[str]:
        version = f"v{ch.version}" if ch.kind == "label" else ""
        if ch.kind == "review":
            what = f"review → {STATUS_LABELS.get(ch.status_after, ch.status_after)}"
        else:
            what = ch.origin
            if ch.status_after != ch.status_before:
                what += f" → {STATUS_LABELS.get(ch.status_after, ch.status_after)}"
        change = describe(ch, self.names)
        note = ch.note if ch.note and ch.origin != "import" else ""
        if change and note.startswith(("moved ", "nudged ")):
            note = note.split(" ", 1)[0]  # "moved left_eye 8.6 px", not the name twice
            text = f"{note} {change}"
        else:
            text = " · ".join(t for t in (note, change) if t)
        return [version, when_text(ch.when), ch.who or "–", what, text]

    # ------------------------------------------------------------------ selection
    def _selected_versions(self) -> list[int]:
        out = []
        for item in self.tree.selectedItems():
            v = int(item.data(0, Qt.ItemDataRole.UserRole) or 0)
            if v:
                out.append(v)
        return sorted(out)

    def version_points(self, version: int) -> Any:
        for ch in self.changes:
            if ch.kind == "label" and ch.version == version and ch.label is not None:
                return ch.label.points
        return None

    def _on_selection(self) -> None:
        vs = self._selected_versions()
        if len(vs) == 1:
            self.diff_requested.emit(self.version_points(vs[0]), None)
        elif len(vs) >= 2:
            self.diff_requested.emit(self.version_points(vs[0]), self.version_points(vs[-1]))
        else:
            self.diff_requested.emit(None, None)
        self._update_buttons()

    def _update_buttons(self) -> None:
        vs = self._selected_versions()
        ok = len(vs) == 1 and vs[0] != self._current_version
        self.restore_btn.setEnabled(ok)
        self.restore_btn.setText(f"Restore v{vs[0]}" if ok else "Restore this version")

    def _restore(self) -> None:
        vs = self._selected_versions()
        if len(vs) == 1:
            self.restore_requested.emit(vs[0])

