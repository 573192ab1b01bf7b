"""Who annotates, and switching projects: nothing of the old project is carried over."""

from __future__ import annotations

import getpass

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLineEdit

from core.project import Project
from tests.app.conftest import open_window
from tests.app.fakes import make_project


def test_the_annotator_is_the_os_account_until_named_never_annotator(monkeypatch):
    from app.settings import settings

    for var in ("USER", "USERNAME", "LOGNAME"):
        monkeypatch.delenv(var, raising=False)
    st = settings()
    assert not st.annotator_named
    assert st.annotator == getpass.getuser() != "annotator"
    st.annotator = "  Ana Lima "
    assert settings().annotator == "Ana Lima" and settings().annotator_named


def test_first_start_asks_who_is_annotating(qtbot, tmp_path):
    """The question comes before any edit; the OS account is offered; the answer is
    what every edit records."""
    from app.main_window import MainWindow
    from app.settings import settings

    path = make_project(tmp_path / "p.gumshoe", n=6)
    win = MainWindow()
    win.confirm_close = False
    qtbot.addWidget(win)
    asked = {}

    def answer() -> None:
        dlg = QApplication.activeModalWidget()
        if not isinstance(dlg, QDialog):
            QTimer.singleShot(20, answer)
            return
        field = dlg.findChild(QLineEdit)
        asked["prefill"] = field.text()
        field.setText("Bea")
        dlg.accept()

    QTimer.singleShot(20, answer)
    assert win.ask_annotator_if_unknown()
    assert asked["prefill"] == getpass.getuser()
    assert settings().annotator == "Bea"
    assert not win.ask_annotator_if_unknown() or settings().annotator == "Bea"  # asked once
    win.show()
    with qtbot.waitSignal(win.queue.model.reset_done, timeout=10_000):
        win.open_project(path)
    qtbot.waitUntil(lambda: win.editor.sample is not None, timeout=5000)
    win.editor.confirm()
    with Project.open(path) as p:
        events = [e for s in p.samples() for e in p.review_history(s.id)]
    assert [e.author for e in events] == ["Bea"]
    win.close()


def test_another_project_shows_nothing_of_the_old_one(qtbot, tmp_path):
    a = make_project(tmp_path / "a" / "a.gumshoe", n=30, seed=1)
    b = make_project(tmp_path / "b" / "b.gumshoe", n=30, seed=2, scored=False)
    with Project.open(a) as p:
        run = p.runs()[-1].id
        for e in range(3):
            p.add_epoch(run, e, train_loss=1.0 / (e + 1), val_error=0.1, seconds=1.0)
    win = open_window(qtbot, a)
    try:
        qtbot.waitUntil(lambda: win.training.plots.point_counts()["loss"] == 3, timeout=5000)
        win.queue.select_row(7)
        old_sid = win.editor.sample.id
        with qtbot.waitSignal(win.queue.model.reset_done, timeout=10_000):
            assert win.open_project(b)
        qtbot.waitUntil(lambda: win.editor.sample is not None, timeout=5000)
        # b is not ranked: its first row, not b's sample with a's selected id
        assert win.queue.current_row() == 0
        assert win.editor.sample.id == win.queue.model.sample_id(0) != old_sid
        assert all(v == 0 for v in win.training.plots.point_counts().values())
        assert win.training.run_id is None
        assert "a.gumshoe" not in win.windowTitle()
    finally:
        win.close()


def test_a_run_stopped_by_opening_another_project_leaves_nothing_behind(qtbot, tmp_path):
    """Training in the window, then another project: the stopped run's last events
    (still queued) must not draw into the new project's plots or name its run."""
    a = make_project(tmp_path / "a" / "a.gumshoe", n=24, seed=1, scored=False)
    b = make_project(tmp_path / "b" / "b.gumshoe", n=24, seed=2, scored=False)
    win = open_window(qtbot, a)
    try:
        w = win.training.start(epochs=50, image_size=32)
        qtbot.waitUntil(lambda: win.training.plots.point_counts()["batch_loss"] > 2,
                        timeout=60_000)
        with qtbot.waitSignal(win.queue.model.reset_done, timeout=60_000):
            assert win.open_project(b)
        assert not w.isRunning()
        qtbot.wait(300)  # let anything still queued arrive
        assert all(v == 0 for v in win.training.plots.point_counts().values())
        assert win.training.run_id is None
        assert "No run yet" in win.training.run_label.text()
    finally:
        win.close()
