"""A review session of 50 flagged samples on the demo, by key presses only
(benchmarks/review_session.py drives it): every known error is fixed, a confirm
is one key, a single wrong point the model places well is two (A, J)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.demo import make_demo
    from core.training import TrainConfig, train

    path = make_demo(tmp_path_factory.mktemp("session") / "demo.gumshoe", n=120)
    train(path, TrainConfig(epochs=10, image_size=64))
    return path


@pytest.mark.slow
def test_a_keyboard_session_fixes_every_known_error(qtbot, trained_demo):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from review_session import run_session
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from PySide6.QtWidgets import QApplication

    from tests.app.conftest import open_window

    win = open_window(qtbot, trained_demo)
    try:
        res = run_session(win, QApplication.instance(), 50)
    finally:
        win.close()
    samples = res["samples"]
    assert len(samples) == 50
    assert res["still_wrong"] == 0, [s for s in samples if s["still_wrong"]]
    kinds = {s["kind"] for s in samples}
    assert {"right", "1 point"} <= kinds, kinds
    assert all(s["keys"] == 1 for s in samples if s["kind"] == "right")
    single = [s for s in samples if s["kind"] == "1 point"]
    assert all(s["wrong_point_selected"] for s in single)  # the queue's point, preselected
    good = [s for s in single if s["estimate_ok"]]
    assert good and all(s["keys"] == 2 for s in good)
    assert all(s["keys"] == 2 for s in samples if s["kind"] == "swapped")
