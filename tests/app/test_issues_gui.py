"""The run's named likely error in the GUI: the queue's "Likely issue" column (and its
search term and right-click filter), the side card's suggestion, and for a left/right
swap the one-click (or one-key) fix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from core.issues import ISSUE_TEXT
from core.project import Project, ScoreRow
from tests.app.fakes import SCHEMA, make_project

PERM = SCHEMA.flip_permutation()


def _issue_project(tmp_path: Path) -> tuple[Path, int, int]:
    """A scored project whose top sample has its sides exchanged (run: ``swap``) and the
    next one shifted (run: ``shifted``); the rest clean."""
    path = make_project(tmp_path / "i.gumshoe", n=20, scored=False)
    with Project.open(path) as p:
        samples = p.samples()
        swapped, shifted = samples[1].id, samples[2].id
        truth = {s.id: p.current_label(s.id).points.copy() for s in samples}
        cur = p.current_label(swapped)
        p.add_label(swapped, points=cur.points[PERM], origin="noise", review_status=None)
        cur = p.current_label(shifted)
        p.add_label(shifted, points=cur.points + 25.0, origin="noise", review_status=None)
        run = p.create_run("deepgum", {"config": {"epochs": 1}})
        rows = []
        for s in samples:
            issue = {swapped: "swap", shifted: "shifted"}.get(s.id)
            lms = [4.0] * 5 if issue else [-3.0] * 5
            score = {swapped: 6.0, shifted: 5.0}.get(s.id, -4.0 - s.id / 100)
            rows.append(ScoreRow(s.id, score, 1 / (1 + math.exp(-score)), lms,
                                 prediction=list(truth[s.id].reshape(-1)), issue=issue))
        p.write_scores(run, rows)
        p.update_run(run, status="finished")
    return path, swapped, shifted


def test_the_queue_names_the_likely_issue_and_filters_by_it(qtbot, tmp_path):
    from tests.app.conftest import open_window

    path, swapped, shifted = _issue_project(tmp_path)
    win = open_window(qtbot, path)
    try:
        m, table = win.queue.model, win.queue.table
        col = 6  # the worst point's column names the run's error where it is not a point
        assert m.headerData(col, Qt.Orientation.Horizontal) == "Likely error"
        assert not table.horizontalHeader().isSectionHidden(col)
        got = {m.row(r).sample_id: m.data(m.index(r, col)) for r in range(m.rowCount())}
        assert got[swapped] == "sides swapped" and got[shifted] == "shifted/scaled"
        assert {v for k, v in got.items() if k not in (swapped, shifted)} <= set(SCHEMA.keypoints)
        # every column is drawn whole in the queue at 1280x800
        shown = [c for c in range(m.columnCount()) if not table.horizontalHeader().isSectionHidden(c)]
        assert sum(table.columnWidth(c) for c in shown) <= table.viewport().width()
        assert f"likely error: {ISSUE_TEXT['swap']}" in m.data(m.index(0, 1),
                                                            Qt.ItemDataRole.ToolTipRole)
        # the search term and the right-click filter
        with qtbot.waitSignal(m.reset_done, timeout=5000):
            win.queue.search.setText("issue:shifted")
        assert [m.row(r).sample_id for r in range(m.rowCount())] == [shifted]
        with qtbot.waitSignal(m.reset_done, timeout=5000):
            win.queue.search.setText("")
        win.queue.select_row(0)
        from PySide6.QtCore import QTimer

        chosen = []

        def pick() -> None:
            menu = win.queue._menu
            act = next(a for a in menu.actions() if "left/right swapped" in a.text())
            chosen.append(act.text())
            act.trigger()
            menu.close()

        QTimer.singleShot(50, pick)
        win.queue._row_menu(table.visualRect(m.index(0, 1)).center())
        assert chosen and win.queue.search.text() == "issue:swap"
        qtbot.waitUntil(lambda: m.loaded and m.rowCount() == 1, timeout=5000)
        assert m.row(0).sample_id == swapped
    finally:
        win.close()


def test_a_swap_is_offered_as_the_fix_and_one_click_or_s_applies_it(qtbot, tmp_path):
    from tests.app.conftest import open_window

    path, swapped, shifted = _issue_project(tmp_path)
    win = open_window(qtbot, path)
    try:
        ed, side = win.editor, win.editor.side
        assert ed.sample.id == swapped  # the top of the queue
        assert side.f_issue.isVisibleTo(side) and "S swaps them back" in side.f_issue.text()
        assert side.fix_btn.isVisibleTo(side)
        assert side.fix_btn.text().startswith("Swap left/right") and "(S)" in side.fix_btn.text()
        before = ed.label.points.copy()
        QTest.mouseClick(side.fix_btn, Qt.MouseButton.LeftButton)
        with Project.open(path) as p:
            lab = p.current_label(swapped)
            assert lab.note == "swapped left and right" and p.sample(swapped).review_status == "fixed"
        np.testing.assert_allclose(lab.points, before[PERM])
        # the sample is reviewed now: no suggestion left
        assert not side.fix_btn.isVisibleTo(side) and not side.f_issue.isVisibleTo(side)
        # the shifted one: its suggestion takes the model's whole label (Ctrl+Shift+A)
        win.queue.select_row(1)
        qtbot.waitUntil(lambda: ed.sample.id == shifted, timeout=5000)
        assert "Ctrl+Shift+A" in side.fix_btn.text() and side.fix_btn.isVisibleTo(side)
        for btn in (side.fix_btn,):  # drawn whole in the side card
            assert btn.fontMetrics().horizontalAdvance(btn.text()) + 12 <= btn.width(), \
                (btn.text(), btn.width())
        QTest.mouseClick(side.fix_btn, Qt.MouseButton.LeftButton)
        with Project.open(path) as p:
            fixed = p.current_label(shifted).points
            truth = p.label_history(shifted)[0].points
        np.testing.assert_allclose(fixed, truth, atol=0.01)
    finally:
        win.close()


def test_the_selected_point_card_shows_a_small_probability_as_text(qtbot, tmp_path):
    """'< 1 %' in the side card's rich text was read as the start of a tag: the line
    said 'P(wrong)' and nothing after it."""
    from PySide6.QtGui import QTextDocument

    from tests.app.conftest import open_window

    path, swapped, shifted = _issue_project(tmp_path)
    win = open_window(qtbot, path)
    try:
        ed = win.editor
        win.queue.select_row(win.queue.model.rowCount() - 1)  # a clean sample: P ~ 5 %
        qtbot.waitUntil(lambda: ed.sample.id not in (swapped, shifted), timeout=5000)
        ed.canvas.select(0)
        doc = QTextDocument()
        doc.setHtml(ed.side.f_point.text())
        shown = doc.toPlainText()
        assert "P(wrong) 5 %" in shown or "P(wrong) < 1 %" in shown, shown
        with Project.open(path) as p:
            run = p.scored_run()
            sid = ed.sample.id
            row = p.scores(run, [sid])[sid]
        lms = list(row.landmark_scores)
        lms[0] = -9.0  # P(wrong) 0.01 %: shown as '< 1 %'
        with Project.open(path) as p:
            rows = list(p.scores(run).values())
            rows = [r if r.sample_id != sid else ScoreRow(sid, r.score, r.outlier_prob, lms,
                                                           prediction=list(np.asarray(
                                                               r.prediction).reshape(-1)),
                                                           issue=r.issue) for r in rows]
            p.write_scores(run, rows)
        ed.show_sample(sid)
        ed.canvas.select(0)
        doc.setHtml(ed.side.f_point.text())
        assert "P(wrong) < 1 %" in doc.toPlainText(), doc.toPlainText()
    finally:
        win.close()


def test_every_fix_is_drawn_whole_in_the_side_card_in_the_apps_own_style(qtbot, tmp_path):
    """The suggestion's button under the style sheet the app runs with (its padding and
    border): 'Model's whole label  (Ctrl+Shift+A)' was cut at both ends at 1280x800."""
    from PySide6.QtWidgets import QApplication

    from app import theme
    from app.review.scores import ISSUE_FIXES
    from tests.app.conftest import open_window

    app = QApplication.instance()
    palette, sheet = app.palette(), app.styleSheet()
    theme.apply(app, "light")
    path, _swapped, _shifted = _issue_project(tmp_path)
    win = open_window(qtbot, path)
    try:
        btn = win.editor.side.fix_btn
        assert btn.isVisibleTo(win.editor.side)
        for _action, text in ISSUE_FIXES.values():
            btn.setText(text)
            QApplication.processEvents()
            assert btn.sizeHint().width() <= btn.width(), (text, btn.sizeHint().width(), btn.width())
    finally:
        win.close()
        app.setStyleSheet(sheet)
        app.setPalette(palette)
