"""The history panel and undo beyond the session, on a real project file."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from app.settings import settings
from core.project import Project
from tests.app.conftest import open_window


def _rows(panel) -> list[list[str]]:
    t = panel.tree
    return [[t.topLevelItem(r).text(c) for c in range(t.columnCount())]
            for r in range(t.topLevelItemCount())]


def _select(panel, versions: list[int]) -> None:
    t = panel.tree
    t.clearSelection()
    for r in range(t.topLevelItemCount()):
        item = t.topLevelItem(r)
        if int(item.data(0, Qt.ItemDataRole.UserRole) or 0) in versions:
            item.setSelected(True)


def test_history_lists_versions_and_reviews_draws_diffs_and_restores(window, qtbot,
                                                                     project_path):
    ed, panel = window.editor, window.history
    me = settings().annotator
    sid = ed.sample.id
    v1 = ed.label.points.copy()
    canvas = ed.canvas
    # a drag of the left eye, then A on the flagged nose
    vp = canvas.viewport()
    start = canvas.mapFromScene(canvas.marker_scene_pos(1))
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, start + QPoint(10, 0))
    QTest.mouseMove(vp, start + QPoint(20, 0))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       start + QPoint(20, 0))
    moved = 20 / canvas.transform().m11()
    canvas.select(2)
    QTest.keyClick(window, Qt.Key.Key_A)
    QTest.keyClick(window, Qt.Key.Key_H)  # show the history
    qtbot.waitUntil(lambda: panel.tree.topLevelItemCount() == 3, timeout=3000)
    rows = _rows(panel)
    assert [r[0] for r in rows] == ["v3 ●", "v2", "v1"]
    assert rows[0][2] == me and rows[0][3] == "model" and "nose" in rows[0][4]
    assert rows[1][2] == me and rows[1][3] == "annotator → fixed"
    m = re.search(r"left_eye ([0-9.]+) px", rows[1][4])
    assert m and float(m.group(1)) == pytest.approx(moved, abs=0.11), rows[1][4]
    assert rows[2][3] == "import"
    # one version: drawn against the current label, where they differ
    _select(panel, [1])
    assert sorted(canvas.overlay.diff_shown()) == [1, 2]
    # two versions: one against the other
    _select(panel, [1, 2])
    assert canvas.overlay.diff_shown() == [1]
    # restore v1: a new version equal to v1, undone by Ctrl+Z
    _select(panel, [1])
    assert panel.restore_btn.isEnabled()
    QTest.mouseClick(panel.restore_btn, Qt.MouseButton.LeftButton)
    with Project.open(project_path) as p:
        hist = p.label_history(sid)
        assert len(hist) == 4 and hist[-1].note == "restored version 1"
        np.testing.assert_allclose(hist[-1].points, v1)
    assert panel.tree.topLevelItemCount() == 4
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    with Project.open(project_path) as p:
        assert not np.allclose(p.current_label(sid).points, v1)
    # a review decision is listed with its status
    QTest.keyClick(window, Qt.Key.Key_C)
    QTest.keyClick(window, Qt.Key.Key_K)
    assert ed.sample.id == sid
    qtbot.waitUntil(lambda: _rows(panel)[0][3] == "review → confirmed", timeout=3000)


def test_undo_works_from_the_files_history_in_a_new_session(qtbot, project_path):
    win = open_window(qtbot, project_path)
    ed = win.editor
    sid = ed.sample.id
    v1 = ed.label.points.copy()
    ed.move_landmark(0, 11.0, 12.0)
    ed.move_landmark(1, 21.0, 22.0)
    win.close()
    # a new session: its own undo stack is empty, the file remembers
    win = open_window(qtbot, project_path)
    try:
        ed = win.editor
        assert ed.sample.id == sid
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        with Project.open(project_path) as p:
            lab = p.current_label(sid)
            np.testing.assert_allclose(lab.points[0], (11.0, 12.0))
            np.testing.assert_allclose(lab.points[1], v1[1])
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        with Project.open(project_path) as p:
            np.testing.assert_allclose(p.current_label(sid).points, v1)
            assert p.sample(sid).review_status == "unreviewed"
            assert len(p.label_history(sid)) == 5  # every step kept
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        with Project.open(project_path) as p:  # the import is not undone
            np.testing.assert_allclose(p.current_label(sid).points, v1)
            assert len(p.label_history(sid)) == 5
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
                       | Qt.KeyboardModifier.ShiftModifier)
        with Project.open(project_path) as p:
            np.testing.assert_allclose(p.current_label(sid).points[0], (11.0, 12.0))
            np.testing.assert_allclose(p.current_label(sid).points[1], v1[1])
    finally:
        win.close()



def test_undo_walks_several_edits_of_one_sample_back_and_redo_forward(qtbot, project_path):
    """A, two nudges, then Ctrl+Z twice: the nudges (one step), then the accept. Each undo
    writes a new version, so the next edit down the stack must be checked against that
    one (it was refused as 'changed by ana', and the accept stayed)."""
    win = open_window(qtbot, project_path)
    try:
        ed = win.editor
        ed.setFocus()
        sid = ed.sample.id
        start = ed.label.points.copy()
        status0 = ed.state.status
        QTest.keyClick(win, Qt.Key.Key_A)
        accepted = ed.label.points.copy()
        for _ in range(2):
            QTest.keyClick(win, Qt.Key.Key_Right)
        nudged = ed.label.points.copy()
        for _ in range(2):
            QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        with Project.open(project_path) as p:
            np.testing.assert_allclose(p.current_label(sid).points, start)
            assert p.sample(sid).review_status == status0
        assert "Not undone" not in ed.hint.text()
        for want in (accepted, nudged):
            QTest.keyClick(win, Qt.Key.Key_Z,
                           Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
            with Project.open(project_path) as p:
                np.testing.assert_allclose(p.current_label(sid).points, want)
        assert "Not redone" not in ed.hint.text()
    finally:
        win.close()
