"""``run_gui``: the entry point ``gumshoe`` / ``gumshoe open PROJECT`` call."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app import errors, qtfix, theme, workers
from app.main_window import MainWindow
from app.settings import log_dir, settings


def run_gui(project_path: str | None) -> int:
    """Create the application, open ``project_path`` (None: the demo) and run."""
    qtfix.install()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Gumshoe")
    app.setOrganizationName("Gumshoe")
    app.setDesktopFileName("gumshoe")
    errors.setup_logging(log_dir())
    errors.install()
    st = settings()
    theme.apply(app, st.theme)
    theme.follow_system(app, lambda: settings().theme)
    app.setWindowIcon(theme.app_icon())
    win = MainWindow()
    errors.sink().parent_widget = win
    win.show()
    win.ask_annotator_if_unknown()
    if project_path:
        QTimer.singleShot(0, lambda: win.open_project(project_path))
    else:
        QTimer.singleShot(0, win.open_demo)
    rc = app.exec()
    workers.stop_all()
    return int(rc)
