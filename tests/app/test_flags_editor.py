"""The editor's flags: one rule for every method, the queue's order, and points an
annotator has reviewed. Driven by key presses and drags on real project files."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel

from app import theme
from core.project import Project, ScoreRow
from tests.app.conftest import open_window
from tests.app.fakes import make_project


def _markers(canvas) -> dict[int, object]:
    """The landmark markers in the canvas' scene, by landmark index."""
    return {it.index: it for it in canvas.scene().items() if type(it).__name__ == "Marker"}


def _fill(canvas, i: int) -> str:
    return _markers(canvas)[i].brush().color().name()


def _flag_count_text(editor) -> str:
    texts = [w.text() for w in editor.findChildren(QLabel)
             if re.search(r"flagged landmark|flags no landmark", w.text())]
    assert texts, "no label says how many landmarks are flagged"
    return texts[0]


def _scored(tmp_path: Path, rows: dict[int, list[float]], method: str = "deepgum") -> Path:
    """The test faces with one run whose landmark scores are ``rows`` (sample id ->
    five scores; other samples: all clean) and the true points as the prediction."""
    path = make_project(tmp_path / "p.gumshoe", n=12, scored=False)
    with Project.open(path) as p:
        run = p.create_run(method, {"epochs": 1})
        out = []
        for s in p.samples():
            lab = p.current_label(s.id)
            truth = lab.points.copy()
            if s.id in rows:
                truth = truth + 0.0
            lms = rows.get(s.id, [-4.0] * 5)
            probs = [1 / (1 + math.exp(-v)) for v in lms] if method == "deepgum" else None
            pred = truth + np.array([[6.0, -4.0]] * 5)
            out.append(ScoreRow(s.id, max(lms), None if probs is None else max(probs), lms,
                                probs, prediction=list(pred.reshape(-1))))
        p.write_scores(run, out)
        p.update_run(run, status="finished")
    return path


def test_a_fixed_or_accepted_point_shows_as_reviewed_and_is_no_longer_counted(qtbot, tmp_path):
    # sample 1: two flagged landmarks, the nose (worst) and the left eye
    path = _scored(tmp_path, {1: [-3.0, 4.0, 9.0, -3.0, -3.0]})
    win = open_window(qtbot, path)
    try:
        ed, canvas = win.editor, win.editor.canvas
        assert ed.sample.id == 1
        red = "#e5484d"  # the doubt colour of a certain error
        reviewed = QColor(getattr(theme.colors(), "reviewed", "#000000")).name()
        assert _fill(canvas, 2) == red and _fill(canvas, 1) != reviewed
        assert re.search(r"\b2\b", _flag_count_text(ed))
        QTest.keyClick(win, Qt.Key.Key_A)  # accept the model for the nose
        assert _fill(canvas, 2) == reviewed
        assert "1 of 2" in _flag_count_text(ed)
        # the other flagged point, set by a drag, is reviewed too
        vp = canvas.viewport()
        start = canvas.mapFromScene(canvas.marker_scene_pos(1))
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        QTest.mouseMove(vp, start + QPoint(5, 5))
        QTest.mouseMove(vp, start + QPoint(12, 9))
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                           start + QPoint(12, 9))
        assert _fill(canvas, 1) == reviewed
        assert "0 of 2" in _flag_count_text(ed)
        # Shift+A has nothing left to do: no new version
        with Project.open(path) as p:
            n = len(p.label_history(1))
        QTest.keyClick(win, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
        with Project.open(path) as p:
            assert len(p.label_history(1)) == n
        # an undo makes the drag undone: that point is flagged again
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert _fill(canvas, 1) != reviewed and _fill(canvas, 2) == reviewed
        assert "1 of 2" in _flag_count_text(ed)
    finally:
        win.close()


def test_selection_follows_the_queue_and_tab_walks_flags_worst_first(qtbot, tmp_path):
    """Both flagged points are certain (P rounds to 1.0): the queue names the one with
    the higher score, and so must the editor, or A fixes a point nobody was shown."""
    path = _scored(tmp_path, {1: [40.0, -3.0, 5.0, -3.0, 60.0]})
    win = open_window(qtbot, path)
    try:
        ed, q = win.editor, win.queue.model
        assert ed.sample.id == 1
        assert q.row(0).worst_landmark == 4
        assert ed.canvas.selected == 4  # mouth_left, as the queue says
        seen = [ed.canvas.selected]
        for _ in range(3):
            QTest.keyClick(win, Qt.Key.Key_Tab)
            seen.append(ed.canvas.selected)
        assert seen == [4, 0, 2, 4]  # worst first, around
        QTest.keyClick(win, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
        assert ed.canvas.selected == 2
        QTest.keyClick(win, Qt.Key.Key_Tab)
        assert ed.canvas.selected == 4
        before = ed.label.points.copy()
        QTest.keyClick(win, Qt.Key.Key_A)
        with Project.open(path) as p:
            lab = p.current_label(1)
        assert not np.allclose(lab.points[4], before[4])
        np.testing.assert_allclose(np.delete(lab.points, 4, 0), np.delete(before, 4, 0))
        assert ed.canvas.selected == 0  # then the next flagged point, worst first
    finally:
        win.close()


@pytest.fixture(scope="module")
def huber_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ellipse project (a fifth of its landmarks displaced) after a real Huber run."""
    from core.noise import apply_noise
    from core.training import TrainConfig, train
    from tests.core.synth import make_dots_project

    folder = tmp_path_factory.mktemp("huber")
    path = make_dots_project(folder, n=80)
    with Project.open(path) as p:
        apply_noise(p, "l-ugo:0.2", seed=1)
    train(path, TrainConfig(method="huber", epochs=2, image_size=32, batch_size=16,
                            score_every=0))
    return path


def _shift_a_moves_only_flagged_landmarks(qtbot, win, path: Path, rule) -> None:  # noqa: ANN001
    """On a clean face of the queue's run nothing is flagged and Shift+A writes nothing;
    on a flagged face it moves exactly the landmarks ``rule(row)`` flags."""
    with Project.open(path) as p:
        scores = p.scores(p.scored_run())
        train = [s.id for s in p.samples(split="train")]
    flagged_of = {sid: rule(scores[sid]) for sid in train}
    clean = [sid for sid in train if not flagged_of[sid].any()]
    bad = [sid for sid in train if flagged_of[sid].any()]
    assert clean and bad
    ed = win.editor
    ed.show_sample(clean[0])
    assert "no landmark" in _flag_count_text(ed) or re.search(r"\b0\b", _flag_count_text(ed))
    with Project.open(path) as p:
        n = len(p.label_history(clean[0]))
    QTest.keyClick(win, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    with Project.open(path) as p:
        assert len(p.label_history(clean[0])) == n
    sid = bad[0]
    ed.show_sample(sid)
    before = ed.label.points.copy()
    QTest.keyClick(win, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    with Project.open(path) as p:
        lab = p.current_label(sid)
    moved = ~np.isclose(lab.points, before).all(axis=1)
    np.testing.assert_array_equal(moved, flagged_of[sid])


def test_a_baseline_run_flags_by_the_one_rule_and_shift_a_leaves_clean_faces(
        qtbot, huber_template, tmp_path):
    from core.scoring import flags  # the trainer's rule

    path = tmp_path / huber_template.name
    shutil.copy2(huber_template, path)
    win = open_window(qtbot, path)
    try:
        _shift_a_moves_only_flagged_landmarks(
            qtbot, win, path, lambda row: flags(np.asarray(row.landmark_scores)))
    finally:
        win.close()


def test_an_old_baseline_run_is_not_read_as_log_odds(qtbot, huber_template, tmp_path):
    """A Huber run stored before every method had probabilities: residual ratios, all
    above 0. Read as log-odds every landmark of every face was flagged, and Shift+A
    overwrote clean faces with the model's estimate."""
    from tests.core.test_flags import legacy_rows

    path = tmp_path / huber_template.name
    shutil.copy2(huber_template, path)
    with Project.open(path) as p:
        rows = legacy_rows(p, p.scored_run())
        old = p.create_run("huber", {"epochs": 2})
        p.write_scores(old, rows)
        p.update_run(old, status="finished")
    win = open_window(qtbot, path)
    try:
        _shift_a_moves_only_flagged_landmarks(
            qtbot, win, path, lambda row: np.asarray(row.landmark_scores) > 3.0)
    finally:
        win.close()
