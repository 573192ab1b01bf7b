"""The main window's file actions: new, open and recent projects, import,
export, preferences, the keys and log dialogs, and the built-in demo project
(made in a worker, then trained for a first ranking). A mixin of
:class:`app.main_window.MainWindow`, which provides ``open_project``,
``train_now``, ``project``, ``recent_menu``, ``st_project``,
``_refresh_annotator`` and, as a QMainWindow, ``statusBar`` (and is the dialogs'
parent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from app import errors, theme, workers
from app.settings import data_dir, settings
from core.project import SUFFIX, Project, ProjectError

# measured on a busy 2-core CPU: demo made in ~10 s, first scores (epoch 5) ~17 s later,
# 10 epochs ~30 s; the wrong faces fill the top of the queue from the first scores on
DEMO_TRAINING = {"epochs": 10, "image_size": 64}


class FileActions:
    """File menu and demo slots (see the module's docstring for what they need)."""

    project: Any
    recent_menu: Any
    st_project: Any

    def new_project(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "New project", str(Path.home()),
                                              f"Gumshoe project (*{SUFFIX})")
        if not path:
            return
        if not path.endswith(SUFFIX):
            path += SUFFIX
        try:
            Project.create(path).close()
        except ProjectError as exc:
            QMessageBox.warning(self, "Cannot create project", str(exc))
            return
        if self.open_project(path):
            self.import_dataset()

    def choose_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", str(Path.home()),
                                              f"Gumshoe project (*{SUFFIX});;All files (*)")
        if path:
            self.open_project(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = settings().recent_projects
        for p in recent:
            a = self.recent_menu.addAction(p)
            a.setEnabled(Path(p).exists())
            a.triggered.connect(lambda _=False, p=p: self.open_project(p))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def import_dataset(self) -> None:
        if self.project is None:
            return
        from app.dialogs.import_dialog import ImportDialog

        dlg = ImportDialog(self.project.path, self)
        dlg.imported.connect(lambda _r: self._after_import())
        dlg.exec()

    def _after_import(self) -> None:
        if self.project is not None:
            self.open_project(self.project.path)  # the schema may be new

    def export_dataset(self) -> None:
        if self.project is None:
            return
        from app.dialogs.export_dialog import ExportDialog

        ExportDialog(self.project.path, self).exec()

    def preferences(self) -> None:
        from app.dialogs.settings_dialog import SettingsDialog

        dlg = SettingsDialog(self)
        if dlg.exec():
            dlg.save()
            app = QApplication.instance()
            theme.apply(app, settings().theme)
            self._refresh_annotator()

    def _show_keys(self) -> None:
        from app.dialogs.keys_dialog import KeysDialog, window_sections

        KeysDialog(window_sections(self), self).exec()

    def _show_log(self) -> None:
        QMessageBox.information(self, "Log file", str(errors.log_file() or "logging is off"))

    # ------------------------------------------------------------------ demo
    def open_demo(self) -> None:
        """Open the demo project in the user data folder, creating it first if needed
        (in a worker: drawing the faces takes a few seconds)."""
        path = data_dir() / f"demo{SUFFIX}"
        if path.exists():
            self.open_project(path)
            return
        self.st_project.setText("Creating the demo project…")

        def make(ctx: workers.WorkerContext, p: str) -> str:
            from core.demo import make_demo

            try:
                make_demo(p, progress=lambda n: ctx.emit(n))
            except BaseException:
                Path(p).unlink(missing_ok=True)  # a half-made demo is made again next time
                raise
            return p

        self._demo_worker = workers.Worker(make, str(path), name="demo")
        self._demo_worker.progress.connect(
            lambda n: self.st_project.setText(
                f"Creating the demo project: drawing faces… {n}"))
        self._demo_worker.done.connect(self._demo_made)
        self._demo_worker.start()

    def _demo_made(self, path: str) -> None:
        """A fresh demo: open it and train a quick first run, so that within a minute
        the queue shows the faces whose labels the model doubts."""
        if self.open_project(path):
            self.train_now(**DEMO_TRAINING)
            self.statusBar().showMessage(
                f"First run: training a quick model ({DEMO_TRAINING['epochs']} epochs) to find "
                "the wrong labels; the queue re-ranks when its first scores arrive")
