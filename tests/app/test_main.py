"""Entry point, demo creation, import and export dialogs."""

from __future__ import annotations

import functools
import sys
import threading

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from core.project import Project


@pytest.fixture
def small_demo(monkeypatch):
    import core.demo

    monkeypatch.setattr(core.demo, "make_demo", functools.partial(core.demo.make_demo, n=24))


def test_run_gui_without_project_makes_and_opens_the_demo(qtbot, small_demo, tmp_path):
    from app import settings
    from app.main_window import MainWindow
    from app.startup import run_gui

    app = QApplication.instance()
    settings.settings().annotator = "ana"  # the first-start question is tested on its own
    seen = {}

    def check() -> None:
        wins = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]
        if wins and wins[0].project is not None and wins[0].queue.model.loaded:
            seen["path"] = wins[0].project.path
            seen["rows"] = wins[0].queue.model.rowCount()
            seen["training"] = wins[0].training.training_here  # a fresh demo trains at once
            for w in wins:
                w.confirm_close = False
                w.close()
            return
        QTimer.singleShot(50, check)

    QTimer.singleShot(50, check)
    hooks = sys.excepthook, threading.excepthook
    try:
        rc = run_gui(None)
    finally:
        sys.excepthook, threading.excepthook = hooks
    assert rc == 0
    assert seen["path"] == settings.data_dir() / "demo.gumshoe"
    assert seen["rows"] == 24
    assert seen["training"]
    assert str(seen["path"]) in settings.settings().recent_projects


def test_import_dialog_lists_skipped_files(qtbot, tmp_path):
    import cv2
    import numpy as np

    from app.dialogs.import_dialog import ImportDialog

    src = tmp_path / "faces"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(src / f"f{i}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        n = 68 if i != 3 else 67  # one broken file
        pts = "\n".join(f"{10 + j % 40} {12 + j % 30}" for j in range(n))
        (src / f"f{i}.pts").write_text(f"version: 1\nn_points: {n}\n{{\n{pts}\n}}\n")
    path = tmp_path / "new.gumshoe"
    Project.create(path).close()
    dlg = ImportDialog(path)
    qtbot.addWidget(dlg)
    dlg.source.setText(str(src))
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("pts"))
    with qtbot.waitSignal(dlg.imported, timeout=30_000) as sig:
        dlg.start()
    dlg.worker.wait()
    res = sig.args[0]
    assert res["added"] == 3 and len(res["skipped"]) == 1
    assert dlg.skipped.count() == 1 and "f3" in dlg.skipped.item(0).text()
    with Project.open(path) as p:
        assert p.count_samples() == 3


def test_export_dialog_writes_dataset_and_change_report(qtbot, project_path, tmp_path):
    from app.dialogs.export_dialog import ExportDialog

    with Project.open(project_path) as p:
        p.set_review(1, "excluded", author="ana")
    dlg = ExportDialog(project_path)
    qtbot.addWidget(dlg)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("csv"))
    dlg.out.setText(str(tmp_path / "clean.csv"))
    w = dlg.start()
    with qtbot.waitSignal(w.finished, timeout=30_000):
        pass
    assert w.error is None, w.error
    assert dlg.result["written"] == 39
    assert (tmp_path / "clean.csv").exists()
    assert dlg.report.rowCount() >= 1
