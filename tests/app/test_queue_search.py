"""The queue's search expressions and header sorting, on a real project."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from app.review.search import parse
from core.project import Project

NAMES = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")


def test_search_terms_are_parsed():
    s = parse("face_01 status:fixed,confirmed p>0.8 point:nose split:val", NAMES)
    assert s.errors == []
    assert s.fields == {"search": "face_01", "statuses": ("fixed", "confirmed"),
                        "min_prob": 0.8, "landmark": 2, "split": "val"}
    assert parse("p>=80%", NAMES).fields["min_prob"] == 0.8
    assert parse("p<20", NAMES).fields["max_prob"] == 0.2
    assert parse("point:3", NAMES).fields["landmark"] == 3
    bad = parse("status:done point:ear p>3.5x", NAMES)
    assert len(bad.errors) == 2 and "status" in bad.errors[0] and "ear" in bad.errors[1]
    assert bad.fields["search"] == "p>3.5x"  # not a term: path text


def _ids(m) -> list[int]:  # noqa: ANN001
    return [m.row(r).sample_id for r in range(m.rowCount())]


def test_search_box_filters_by_status_probability_and_worst_point(window, qtbot,
                                                                   project_path):
    panel, m = window.queue, window.queue.model
    with Project.open(project_path) as p:
        p.set_review(2, "fixed", author="ana")
        scores = p.scores(p.scored_run())
    with qtbot.waitSignal(m.reset_done, timeout=5000):
        panel.search.setText("status:fixed")
    assert _ids(m) == [2]
    with qtbot.waitSignal(m.reset_done, timeout=5000):
        panel.search.setText("p>0.6 point:nose")
    want = {sid for sid, r in scores.items() if r.outlier_prob > 0.6
            and max(range(5), key=lambda k: r.landmark_scores[k]) == 2}
    assert want and set(_ids(m)) == want
    assert all(m.data(m.index(r, 6)) == "nose" for r in range(m.rowCount()))
    with qtbot.waitSignal(m.reset_done, timeout=5000):
        panel.search.setText("point:ear")
    assert panel.search_note.isVisibleTo(panel) and "ear" in panel.search_note.text()


def test_header_clicks_sort_by_that_column(window, qtbot):
    panel, m = window.queue, window.queue.model
    hh = panel.table.horizontalHeader()

    def click(col: int) -> None:
        x = hh.sectionViewportPosition(col) + hh.sectionSize(col) // 2
        with qtbot.waitSignal(m.reset_done, timeout=5000):
            QTest.mouseClick(hh.viewport(), Qt.MouseButton.LeftButton,
                             Qt.KeyboardModifier.NoModifier, QPoint(x, hh.height() // 2))

    click(1)  # Sample: A-Z
    paths = [m.row(r).path for r in range(m.rowCount())]
    assert paths == sorted(paths)
    click(1)  # again: Z-A
    assert [m.row(r).path for r in range(m.rowCount())] == sorted(paths, reverse=True)
    click(6)  # worst point
    worst = [m.row(r).worst_landmark for r in range(m.rowCount())]
    assert worst == sorted(worst)
    click(5)  # P(wrong): the ranking again
    scores = [m.row(r).score for r in range(m.rowCount())]
    assert scores == sorted(scores, reverse=True)


def test_is_conflict_shows_the_samples_a_merge_found_changed_twice(qtbot, tmp_path):
    """A copy edited elsewhere and merged back: the sample both sides changed is marked
    in the queue and 'is:conflict' shows only it."""
    from core.project import Project, merge
    from tests.app.conftest import open_window
    from tests.app.fakes import make_project

    path = make_project(tmp_path / "a.gumshoe", n=12, scored=True)
    copy = tmp_path / "b.gumshoe"
    with Project.open(path) as p:
        p.backup(copy)
        sid = p.samples()[4].id
        cur = p.current_label(sid)
        p.add_label(sid, points=cur.points + 3.0, author="ana", replaces=cur.id)
    with Project.open(copy) as q:
        cur = q.current_label(sid)
        q.add_label(sid, points=cur.points - 4.0, author="bob", replaces=cur.id)
    with Project.open(path) as p:
        merge(p, copy)
    win = open_window(qtbot, path)
    try:
        m = win.queue.model
        with qtbot.waitSignal(m.reset_done, timeout=5000):
            win.queue.search.setText("is:conflict")
        assert [m.row(r).sample_id for r in range(m.rowCount())] == [sid]
        assert m.data(m.index(0, 3)).startswith("⚠")
        assert not win.queue.search_note.isVisibleTo(win.queue)
    finally:
        win.close()


def test_queue_marks_samples_whose_image_cannot_be_used(qtbot, project_path):
    """A sample whose image went missing or changed after import (recorded by the image
    cache) is marked in the status column, and its tooltip says why."""
    from core.image_problems import ImageProblem, record_problems
    from tests.app.conftest import open_window

    with Project.open(project_path) as p:
        p.cache_dir.mkdir(parents=True, exist_ok=True)  # where the image cache records them
        record_problems(p.cache_dir, [3, 4], {3: ImageProblem("changed", "bytes differ",
                                                               "2026-12-02T10:00:00Z")})
    win = open_window(qtbot, project_path)
    m = win.queue.model
    qtbot.waitUntil(lambda: 3 in _ids(m), timeout=5000)
    rows = {m.row(r).sample_id: r for r in range(m.rowCount())}
    assert m.data(m.index(rows[3], 3)) == "✖ to review"
    tip = m.data(m.index(rows[3], 3), Qt.ItemDataRole.ToolTipRole)
    assert "image changed since import" in tip and "left out of training" in tip
    assert m.data(m.index(rows[4], 3)) == "to review"
    win.close()
