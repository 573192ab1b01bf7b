"""Help ▸ Keyboard and mouse: every key and mouse action of the editor and the
window, in two aligned columns, generated from the actions themselves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def _keys(a: QAction) -> str:
    seqs = [k.toString(k.SequenceFormat.NativeText) for k in a.shortcuts()]
    return ", ".join(s for s in seqs if s and s != "Backtab")


def rows(sections: Sequence[tuple[str, Iterable[tuple[str, str]]]]) -> list[tuple[str, str, bool]]:
    """(keys, what, is_heading) rows for the table."""
    out: list[tuple[str, str, bool]] = []
    for title, items in sections:
        out.append((title, "", True))
        out.extend((k, what, False) for k, what in items)
    return out


def action_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    out = []
    for a in actions:
        keys = _keys(a)
        if keys:
            tip = a.toolTip().rsplit(" (", 1)[0] if a.toolTip() else a.text()
            out.append((keys, tip.replace("&", "")))
    return out


class KeysDialog(QDialog):
    def __init__(self, sections: Sequence[tuple[str, Iterable[tuple[str, str]]]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        v = QVBoxLayout(self)
        data = rows(sections)
        t = QTableWidget(len(data), 2)
        t.setHorizontalHeaderLabels(["Keys / mouse", "Does"])
        t.verticalHeader().hide()
        t.setShowGrid(False)
        t.setWordWrap(False)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        t.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        bold = QFont(t.font())
        bold.setBold(True)
        for r, (keys, what, heading) in enumerate(data):
            a = QTableWidgetItem(keys)
            b = QTableWidgetItem(what)
            if heading:
                a.setFont(bold)
                t.setSpan(r, 0, 1, 2)
            t.setItem(r, 0, a)
            t.setItem(r, 1, b)
        t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        t.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        t.verticalHeader().setDefaultSectionSize(22)
        self.table = t
        v.addWidget(t)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(self.reject)
        v.addWidget(bb)
        self.resize(660, min(760, 80 + 22 * len(data)))


def window_sections(win: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """The keyboard help's content, from the actions themselves."""
    from app.review.keys import MOUSE

    a = win.editor.actions_by_name
    editor = [n for n in a if not n.startswith("nudge")]
    split = editor.index("undo")
    review = action_rows(a[n] for n in editor[:split])
    review.insert(review.index(next(r for r in review if r[0] == "V")),
                  ("Arrows, Shift+Arrows",
                   "Nudge the selected landmark 1 px, 10 px (editor focused)"))
    view = action_rows(a[n] for n in editor[split:])
    window = action_rows([win.act_history, win.queue_dock.toggleViewAction(),
                          win.training_dock.toggleViewAction(), win.act_open,
                          win.act_import, win.act_export, win.act_prefs, win.act_keys,
                          win.act_quit])
    return [("Review", review), ("Edit and view", view), ("Mouse", list(MOUSE)),
            ("Window", window)]
