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
