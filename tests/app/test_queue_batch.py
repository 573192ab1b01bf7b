"""The queue: many rows at once (Shift+click, right-click menu), one undo step."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.review.queue_model import common_folder, display_path
from core.project import Project


def _click_row(table, row: int, mod=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
    rect = table.visualRect(table.model().index(row, 1))
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, mod, rect.center())


def _choose(prefix: str) -> None:
    """Pick the open context menu's action whose text starts with ``prefix``."""
    menu = QApplication.activePopupWidget()
    if menu is None:
        QTimer.singleShot(20, lambda: _choose(prefix))
        return
    action = next(a for a in menu.actions() if a.text().startswith(prefix))
    menu.close()
    action.trigger()


def test_batch_confirm_from_the_right_click_menu_and_one_undo(window, qtbot, project_path):
    panel = window.queue
    table = panel.table
    _click_row(table, 0)
    _click_row(table, 4, Qt.KeyboardModifier.ShiftModifier)
    ids = panel.selected_samples()
    assert len(ids) == 5
    QTimer.singleShot(50, lambda: _choose("Confirm 5 samples"))
    rect = table.visualRect(table.model().index(2, 1))
    panel._row_menu(rect.center())  # what a right click on the rows opens
    qtbot.waitUntil(lambda: all(panel.model.row(r).review_status == "confirmed" for r in range(5)),
                    timeout=10_000)
    with Project.open(project_path) as p:
        assert {p.sample(s).review_status for s in ids} == {"confirmed"}
        assert p.review_history(ids[0])[-1].author
    qtbot.waitUntil(lambda: panel.model.counts.get("confirmed") == 5, timeout=5000)
    window.activateWindow()  # the menu's popup had the focus
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    window.editor.setFocus()
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    with Project.open(project_path) as p:
        assert {p.sample(s).review_status for s in ids} == {"unreviewed"}


def test_paths_show_what_tells_samples_apart():
    paths = ["images/001A02.JPG", "images/001A05.JPG", "images/002A12.JPG"]
    prefix = common_folder(paths)
    assert prefix == "images/"
    assert [display_path(p, prefix) for p in paths] == ["001A02.JPG", "001A05.JPG",
                                                       "002A12.JPG"]
    assert common_folder(["a/b/x.png", "a/c/y.png"]) == "a/"
    assert common_folder(["x.png", "y.png"]) == ""
    assert display_path("other/z.png", "images/") == "other/z.png"

