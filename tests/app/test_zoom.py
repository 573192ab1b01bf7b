"""Zoom and pan on the landmark canvas, driven by real wheel, key and mouse events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.project import Project


def wheel(canvas, pos: QPoint, steps: int = 1) -> None:
    """``steps`` notches of a real mouse wheel over the canvas at viewport ``pos``."""
    vp = canvas.viewport()
    for _ in range(abs(steps)):
        ev = QWheelEvent(QPointF(pos), QPointF(vp.mapToGlobal(pos)), QPoint(0, 0),
                         QPoint(0, 120 if steps > 0 else -120), Qt.MouseButton.NoButton,
                         Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(vp, ev)


def scene_at(canvas, pos: QPoint) -> QPointF:
    return canvas.viewportTransform().inverted()[0].map(QPointF(pos))


def test_zoom_holds_until_fit_and_the_wheel_zooms_about_the_cursor(window, qtbot):
    canvas = window.editor.canvas
    qtbot.wait(50)
    fitted = canvas.transform().m11()
    nose = canvas.mapFromScene(canvas.marker_scene_pos(2))
    under = scene_at(canvas, nose)
    wheel(canvas, nose, 4)
    qtbot.wait(100)  # scroll bars appear, the view resizes: the zoom must hold
    zoomed = canvas.transform().m11()
    assert zoomed > 2.0 * fitted
    # the point under the cursor stays under the cursor (within a screen pixel)
    after = scene_at(canvas, nose)
    assert abs(after.x() - under.x()) * zoomed < 1.5
    assert abs(after.y() - under.y()) * zoomed < 1.5
    # keys zoom too, and hold
    canvas.setFocus()
    QTest.keyClick(window, Qt.Key.Key_Plus)
    qtbot.wait(50)
    assert canvas.transform().m11() == pytest.approx(zoomed * 1.25, rel=1e-3)
    QTest.keyClick(window, Qt.Key.Key_Minus)
    qtbot.wait(50)
    assert canvas.transform().m11() == pytest.approx(zoomed, rel=1e-3)
    # a window resize keeps the zoom
    window.resize(1200, 760)
    qtbot.wait(100)
    assert canvas.transform().m11() == pytest.approx(zoomed, rel=1e-3)
    # the next sample (same image size) keeps the zoom as well
    QTest.keyClick(window, Qt.Key.Key_J)
    qtbot.wait(50)
    assert canvas.transform().m11() == pytest.approx(zoomed, rel=1e-3)
    # F fits again, and a resize then re-fits
    QTest.keyClick(window, Qt.Key.Key_F)
    qtbot.wait(50)
    assert canvas.zoom_factor == pytest.approx(1.0, rel=1e-3)
    window.resize(1280, 800)
    qtbot.wait(100)
    assert canvas.fitted and canvas.zoom_factor == pytest.approx(1.0, rel=1e-3)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("demo") / "demo.gumshoe", n=6)


def test_a_mouth_point_of_a_68_point_face_is_editable_at_4x(qtbot, demo_template):
    from tests.app.conftest import open_window

    win = open_window(qtbot, demo_template)
    try:
        ed = win.editor
        qtbot.waitUntil(lambda: ed.canvas.has_image, timeout=5000)
        canvas = ed.canvas
        names = ed.schema.keypoints
        mouth = [i for i, n in enumerate(names) if n.startswith("mouth")]
        assert len(mouth) == 20
        centre = ed.label.points[mouth].mean(axis=0)
        fitted = canvas.transform().m11()
        pos = canvas.mapFromScene(QPointF(*centre))
        for _ in range(30):  # notches until 4x, each at the mouth
            if canvas.transform().m11() >= 4.0 * fitted:
                break
            wheel(canvas, pos)
            qtbot.wait(20)
        qtbot.wait(100)
        assert canvas.transform().m11() >= 4.0 * fitted
        scale = canvas.transform().m11()
        # the 20 mouth points are all in view and at least 6 screen pixels apart
        vp_rect = canvas.viewport().rect()
        screen = np.array([[canvas.mapFromScene(canvas.marker_scene_pos(i)).x(),
                            canvas.mapFromScene(canvas.marker_scene_pos(i)).y()]
                           for i in mouth], dtype=float)
        assert all(vp_rect.contains(QPoint(int(x), int(y))) for x, y in screen)
        d = np.linalg.norm(screen[:, None] - screen[None], axis=-1) + np.eye(len(mouth)) * 1e9
        pts = ed.label.points[mouth]
        dd = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(mouth)) * 1e9
        # points that differ in the label are told apart on screen
        assert (d[dd > 1.5] >= 6).all()
        # drag one inner-lip point by 8 screen pixels: 8 / scale image pixels
        k = names.index("mouth_inner_2") if "mouth_inner_2" in names else mouth[-3]
        before = ed.label.points.copy()
        vp = canvas.viewport()
        start = canvas.mapFromScene(canvas.marker_scene_pos(k))
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        QTest.mouseMove(vp, start + QPoint(4, 0))
        QTest.mouseMove(vp, start + QPoint(8, 0))
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                           start + QPoint(8, 0))
        qtbot.wait(50)
        assert canvas.transform().m11() == pytest.approx(scale, rel=1e-3)  # still zoomed
        with Project.open(demo_template) as p:
            lab = p.current_label(ed.sample.id)
        moved = lab.points[k] - before[k]
        assert moved[0] == pytest.approx(8 / scale, abs=1.0 / scale + 0.01)
        assert abs(moved[1]) < 1.0 / scale + 0.01
        np.testing.assert_allclose(np.delete(lab.points, k, 0), np.delete(before, k, 0))
    finally:
        win.close()
