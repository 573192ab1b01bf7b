"""Point tools, by key presses on a real project: nudge, visibility, swap, the point
list, the model overlay; J/K stay next/previous."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from core.project import Project


def _current(path, sid):
    with Project.open(path) as p:
        return p.current_label(sid), len(p.label_history(sid))


def test_arrows_nudge_the_selected_point_and_j_k_stay_next_previous(window, project_path):
    ed = window.editor
    ed.setFocus()
    sid = ed.sample.id
    i = ed.canvas.selected
    assert i == 2
    start = ed.label.points[i].copy()
    QTest.keyClick(window, Qt.Key.Key_Right)
    QTest.keyClick(window, Qt.Key.Key_Right)
    QTest.keyClick(window, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    lab, n = _current(project_path, sid)
    np.testing.assert_allclose(lab.points[i], start + (2 - 10, 10), atol=1e-3)
    assert n == 5  # each press is committed at once
    assert ed.sample.id == sid and ed.canvas.selected == i
    # the nudges of one point undo as one step
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    lab, _ = _current(project_path, sid)
    np.testing.assert_allclose(lab.points[i], start, atol=1e-3)
    QTest.keyClick(window, Qt.Key.Key_J)
    assert ed.sample.id != sid
    QTest.keyClick(window, Qt.Key.Key_K)
    assert ed.sample.id == sid
    # in the queue the arrows move the rows
    window.queue.table.setFocus()
    row = window.queue.current_row()
    QTest.keyClick(window.queue.table, Qt.Key.Key_Down)
    assert window.queue.current_row() == row + 1
    lab2, _ = _current(project_path, sid)
    np.testing.assert_allclose(lab2.points, lab.points)


def test_v_cycles_visible_occluded_not_labelled(window, project_path):
    ed = window.editor
    ed.setFocus()
    sid, i = ed.sample.id, 0
    ed.canvas.select(i)
    pos = ed.label.points[i].copy()
    seen = []
    for _ in range(3):
        QTest.keyClick(window, Qt.Key.Key_V)
        lab, _ = _current(project_path, sid)
        seen.append(int(lab.visibility[i]))
        if seen[-1] == 0:
            assert not np.isfinite(lab.points[i]).any()
            assert not ed.canvas.overlay.markers[i].isVisible()
        else:
            np.testing.assert_allclose(lab.points[i], pos)
    assert seen == [1, 0, 2]
    assert ed.canvas.selected == i


def test_s_swaps_left_and_right_by_the_schema_pairs(window, project_path):
    ed = window.editor
    sid = ed.sample.id
    before = ed.label.points.copy()
    QTest.keyClick(window, Qt.Key.Key_S)
    lab, _ = _current(project_path, sid)
    perm = [1, 0, 2, 4, 3]  # the test schema's pairs: eyes, mouth corners
    np.testing.assert_allclose(lab.points, before[perm])
    assert lab.note == "swapped left and right"


def test_point_list_selects_and_marks_flags_and_m_hides_the_model(window, qtbot):
    ed = window.editor
    table = ed.side.points
    m = table.model()
    assert m.rowCount() == 5
    assert m.data(m.index(2, 0)).startswith("⚑")  # the flagged nose
    assert not m.data(m.index(0, 0)).startswith("⚑")
    rect = table.visualRect(m.index(3, 0))
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, rect.center())
    assert ed.canvas.selected == 3
    ghosts = ed.canvas.overlay._ghosts
    assert ghosts[2].isVisible()  # the flagged nose's estimate
    QTest.keyClick(window, Qt.Key.Key_M)
    assert not any(g.isVisible() for g in ghosts)
    QTest.keyClick(window, Qt.Key.Key_M)
    assert ghosts[2].isVisible()
