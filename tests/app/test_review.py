"""The review queue and the editor, on a real project file."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from app.settings import settings
from core.project import Project, ScoreRow


def _scores(model) -> list[float]:
    return [model.row(r).score for r in range(model.rowCount())]


def test_queue_sorted_by_score_and_flagged_first(window):
    m = window.queue.model
    scores = _scores(m)
    assert scores == sorted(scores, reverse=True)
    # every fifth face has a wrong nose: those 8 are the top of the queue
    top = [m.row(r).path for r in range(8)]
    assert all(int(p[5:8]) % 5 == 0 for p in top), top
    assert m.row(0).worst_landmark == 2  # the nose
    assert m.data(m.index(0, 6)).startswith("nose")


def test_queue_filters_and_counts(window, qtbot):
    panel = window.queue
    with qtbot.waitSignal(panel.model.reset_done, timeout=5000):
        panel.search.setText("face_01")
    assert panel.model.rowCount() == 10
    with qtbot.waitSignal(panel.model.reset_done, timeout=5000):
        panel.search.setText("")
    with qtbot.waitSignal(panel.model.reset_done, timeout=5000):
        panel.split.setCurrentIndex(panel.split.findData("val"))
    assert panel.model.rowCount() == 4
    assert {panel.model.row(r).split for r in range(4)} == {"val"}
    with qtbot.waitSignal(panel.model.reset_done, timeout=5000):
        panel.split.setCurrentIndex(0)
    with qtbot.waitSignal(panel.model.reset_done, timeout=5000):
        panel.min_prob.setValue(50)
    assert panel.model.rowCount() == 8
    assert panel.model.counts["unreviewed"] == 40


def _marker_viewport_pos(canvas, i: int) -> QPoint:
    return canvas.mapFromScene(canvas.marker_scene_pos(i))


def test_drag_landmark_commits_a_new_label_version(window, qtbot, project_path):
    ed = window.editor
    sid = ed.sample.id
    before = ed.label.points.copy()
    canvas = ed.canvas
    vp = canvas.viewport()
    start = _marker_viewport_pos(canvas, 2)
    end = start + QPoint(30, 12)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, start + QPoint(10, 4))
    QTest.mouseMove(vp, end)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    # a second connection, app still open: the edit is in the file (kill-safe)
    with Project.open(project_path) as other:
        hist = other.label_history(sid)
        assert len(hist) == 2
        new = hist[-1]
        assert new.origin == "annotator" and new.author == settings().annotator
        moved = new.points[2] - before[2]
        scale = canvas.transform().m11()
        assert moved[0] == pytest.approx(30 / scale, abs=1.0 / scale + 0.01)
        assert moved[1] == pytest.approx(12 / scale, abs=1.0 / scale + 0.01)
        np.testing.assert_allclose(np.delete(new.points, 2, 0), np.delete(before, 2, 0))
        assert other.sample(sid).review_status == "fixed"
    assert window.queue.model.row(window.queue.current_row()).review_status == "fixed"


def test_move_undo_redo_across_samples(window, qtbot, project_path):
    ed = window.editor
    first = ed.sample.id
    orig = ed.label.points.copy()
    ed.move_landmark(0, 11.25, 22.5)  # sub-pixel
    QTest.keyClick(window, Qt.Key.Key_J)  # next sample
    assert ed.sample.id != first
    second = ed.sample.id
    ed.move_landmark(1, 33.0, 44.0)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ed.sample.id == first  # the undo brought us back to the first sample
    assert window.queue.current_row() == 0  # and the queue follows
    with Project.open(project_path) as p:
        h1 = p.label_history(first)
        assert [lab.origin for lab in h1] == ["import", "annotator", "annotator"]
        np.testing.assert_allclose(h1[1].points[0], (11.25, 22.5))
        np.testing.assert_allclose(h1[-1].points, orig)  # restored, history kept
        assert h1[-1].note.startswith("undo")
        assert p.sample(first).review_status == "unreviewed"
        assert len(p.label_history(second)) == 3
    QTest.keyClick(window, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    with Project.open(project_path) as p:
        np.testing.assert_allclose(p.current_label(first).points[0], (11.25, 22.5))
        assert p.sample(first).review_status == "fixed"


def test_accept_suggestion_and_accept_all(window, project_path):
    ed = window.editor
    sid = ed.sample.id
    assert ed.canvas.selected == 2  # the worst flagged landmark is preselected
    pred = ed.canvas.prediction.copy()
    QTest.keyClick(window, Qt.Key.Key_A)
    with Project.open(project_path) as p:
        lab = p.current_label(sid)
        assert lab.origin == "model"
        np.testing.assert_allclose(lab.points[2], pred[2], atol=1e-3)
    ed.show_sample(window.queue.model.sample_id(1))
    sid2 = ed.sample.id
    flagged = ed.state.flagged_order()
    assert flagged == [2]
    QTest.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    with Project.open(project_path) as p:
        lab = p.current_label(sid2)
        assert lab.origin == "model" and "flagged" in lab.note
        np.testing.assert_allclose(lab.points[flagged], ed.canvas.prediction[flagged], atol=1e-3)


def test_confirm_and_exclude_advance(window, qtbot, project_path):
    ed, q = window.editor, window.queue
    first = ed.sample.id
    QTest.keyClick(window, Qt.Key.Key_C)
    assert q.current_row() == 1
    second = ed.sample.id
    QTest.keyClick(window, Qt.Key.Key_X)
    assert q.current_row() == 2
    with Project.open(project_path) as p:
        assert p.sample(first).review_status == "confirmed"
        assert p.sample(second).review_status == "excluded"
        assert p.review_history(second)[-1].author == settings().annotator
    qtbot.waitUntil(lambda: q.model.counts.get("confirmed") == 1
                    and q.model.counts.get("excluded") == 1, timeout=5000)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    with Project.open(project_path) as p:
        assert p.sample(second).review_status == "unreviewed"


def test_switching_sample_is_fast(window, qtbot):
    ed = window.editor
    times = []
    for _ in range(8):
        QTest.keyClick(window, Qt.Key.Key_J)
        times.append(ed.last_switch_ms)
        qtbot.waitUntil(lambda: ed.canvas.has_image, timeout=5000)
    assert sorted(times)[len(times) // 2] < 50


def test_age_project(qtbot, tmp_path):
    from tests.app.conftest import open_window
    from tests.app.fakes import make_project

    path = make_project(tmp_path / "age.gumshoe", n=12, task="age")
    win = open_window(qtbot, path)
    ed = win.editor
    assert ed.side_stack.currentIndex() == 1
    m = win.queue.model
    assert m.headerData(6, Qt.Orientation.Horizontal) == "Age → model"
    assert "→" in m.data(m.index(0, 6))
    assert "±" in ed.side.f_age_pred.text()
    assert ed.side.f_age_run.text() == "from run 1 (deepgum)"
    assert ed.side.f_version.text() == "v1 · import"  # the origin once, not "import · import"
    sid = ed.sample.id
    # a run that stored no spread, or a zero one, shows the estimate without "± 0.0"
    for std in ([0.0], None, [float("nan")]):
        with Project.open(path) as p:
            run = p.create_run("l2", {"epochs": 2})
            p.write_scores(run, [ScoreRow(sid, 1.0, 0.5, prediction=[18.5], prediction_std=std)])
        ed.set_run(None, None)
        ed.show_sample(sid)
        assert ed.side.f_age_pred.text() == "18.5", std
        assert ed.side.f_age_run.text() == f"from run {run} (l2)"
    # a spread wider than a lifetime (a run that learnt little) is no "± 365.8"
    with Project.open(path) as p:
        run = p.create_run("deepgum", {"epochs": 2})
        p.write_scores(run, [ScoreRow(sid, 3.0, 0.95, prediction=[22.3], prediction_std=[365.8],
                                      issue="age")])
    ed.set_run(None, None)
    ed.show_sample(sid)
    assert ed.side.f_age_pred.text() == "22.3"
    assert ed.side.f_age_run.text() == f"from run {run} (deepgum) · unsure (± 366 years)"
    assert ed.side.f_age_run.wordWrap()  # the card is narrow: the line wraps, it is not cut
    assert ed.side.f_issue.isVisibleTo(ed.side) and not ed.side.fix_btn.isVisibleTo(ed.side)
    ed.age_spin.setValue(42.5)
    ed.age_spin.setFocus()
    QTest.keyClick(ed.age_spin, Qt.Key.Key_Return)
    with Project.open(path) as p:
        assert p.current_label(sid).age == 42.5
    ed.accept_selected()
    with Project.open(path) as p:
        lab = p.current_label(sid)
        assert lab.origin == "model"
    win.close()


def test_pages_cut_from_the_snapshot_show_fresh_status(qtbot, project_path, monkeypatch):
    from app.review import queue_model, queue_worker

    # 40 rows: five pages, four from the snapshot (one page size: the model reads the worker's)
    monkeypatch.setattr(queue_worker, "PAGE", 8)
    m = queue_model.QueueModel()
    with qtbot.waitSignal(m.reset_done, timeout=5000):
        m.set_project(project_path, ("a", "b", "c", "d", "e"))
    try:
        qtbot.waitUntil(lambda: m.rowCount() == 40, timeout=5000)  # the count follows page 0
        with Project.open(project_path) as p:  # an edit after the snapshot was taken
            last_id = p.queue(limit=1, offset=39)[0].sample_id
            p.set_review(last_id, "confirmed")
        qtbot.waitUntil(lambda: all(m.row(r) is not None for r in range(40)), timeout=5000)
        scores = [m.row(r).score for r in range(40)]
        assert scores == sorted(scores, reverse=True)
        assert len({m.row(r).sample_id for r in range(40)}) == 40
        assert m.row(39).sample_id == last_id and m.row(39).review_status == "confirmed"
    finally:
        m.close()


def test_unreadable_image_is_named_in_the_editor(qtbot, project_path):
    """A sample whose file was truncated after import: the editor says why it shows
    no image (the engine's decoder, with its truncation check), and moves on."""
    from tests.app.conftest import open_window

    with Project.open(project_path) as p:
        first = p.samples()[0]
    data = first.image_path.read_bytes()
    first.image_path.write_bytes(data[: len(data) // 3])
    w = open_window(qtbot, project_path)
    w.editor.show_sample(first.id)
    qtbot.waitUntil(lambda: "Cannot show the image" in w.editor.hint.text(), timeout=5000)
    assert first.image_path.name in w.editor.hint.text()
