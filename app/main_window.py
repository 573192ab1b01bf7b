"""The main window (thin: it builds widgets and wires signals; logic is in core/)
and ``run_gui``, the entry point ``gumshoe`` / ``gumshoe open PROJECT`` call."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QWidget,
)

from app import errors, qtfix, theme, workers
from app.review.editor import EditorWidget
from app.review.queue_panel import QueuePanel
from app.settings import data_dir, log_dir, settings
from app.training.panel import TrainingPanel
from core.project import SUFFIX, Project, ProjectError

log = logging.getLogger(__name__)

# measured on a busy 2-core CPU: demo made in ~10 s, first scores (epoch 5) ~17 s later,
# 10 epochs ~30 s; the wrong faces fill the top of the queue from the first scores on
DEMO_TRAINING = {"epochs": 10, "image_size": 64}


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        qtfix.install()
        super().__init__()
        self.project: Project | None = None
        self.setWindowTitle("Gumshoe")
        self.setWindowIcon(theme.app_icon())
        self.resize(1280, 800)
        self.confirm_close = True  # tests turn the question off
        self._demo_worker: workers.Worker | None = None
        self._after_rerank: str | None = None  # what to do when the re-ranked queue lands
        self._setup_widgets()
        self._setup_actions()
        self._setup_menus()
        self._setup_toolbar()
        self._setup_docks()
        self._setup_statusbar()
        self._setup_wiring()
        self._restore_state()

    # ------------------------------------------------------------------ setup
    def _setup_widgets(self) -> None:
        self.editor = EditorWidget(lambda: settings().annotator)
        self.setCentralWidget(self.editor)
        self.queue = QueuePanel()
        self.training = TrainingPanel()

    def _act(self, text: str, slot: Any, icon: str = "", keys: str | QKeySequence = "",
             tip: str = "") -> QAction:
        a = QAction(text, self)
        if icon:
            theme.bind_icon(a, icon)
        if keys:
            a.setShortcut(QKeySequence(keys))
        if tip:
            a.setToolTip(tip)
        a.triggered.connect(slot)
        return a

    def _setup_actions(self) -> None:
        self.act_new = self._act("&New project…", self.new_project, "new",
                                 QKeySequence.StandardKey.New)
        self.act_open = self._act("&Open project…", self.choose_project, "open",
                                  QKeySequence.StandardKey.Open)
        self.act_import = self._act("&Import dataset…", self.import_dataset, "import", "Ctrl+I",
                                    "Import a dataset into this project")
        self.act_export = self._act("&Export…", self.export_dataset, "export", "Ctrl+E",
                                    "Export the clean dataset and the change report")
        self.act_prefs = self._act("&Preferences…", self.preferences, "settings", "Ctrl+,")
        self.act_quit = self._act("&Quit", self.close, "", QKeySequence.StandardKey.Quit)

    def _setup_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_new, self.act_open])
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        m.addActions([self.act_import, self.act_export])
        m.addSeparator()
        m.addAction(self.act_prefs)
        m.addSeparator()
        m.addAction(self.act_quit)
        e = mb.addMenu("&Review")
        a = self.editor.actions_by_name
        for name in ("next", "previous", None, "accept", "accept_all", "confirm", "exclude",
                     None, "undo", "redo", None, "fit", "zoom_in", "zoom_out", "predictions"):
            if name is None:
                e.addSeparator()
            else:
                e.addAction(a[name])
        self.view_menu = mb.addMenu("&View")
        h = mb.addMenu("&Help")
        h.addAction(self._act("&Keyboard shortcuts", self._show_keys))
        h.addAction(self._act("Show &log file", self._show_log))

    def _setup_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addActions([self.act_open, self.act_import, self.act_export])
        tb.addSeparator()
        tb.addAction(self.act_prefs)
        self.toolbar = tb

    def _dock(self, title: str, widget: QWidget, name: str,
              area: Qt.DockWidgetArea) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                      | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                      | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, d)
        self.view_menu.addAction(d.toggleViewAction())
        return d

    def _setup_docks(self) -> None:
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.queue_dock = self._dock("Review queue", self.queue, "queue-dock",
                                     Qt.DockWidgetArea.LeftDockWidgetArea)
        self.training_dock = self._dock("Training", self.training, "training-dock",
                                        Qt.DockWidgetArea.BottomDockWidgetArea)
        theme.bind_icon(self.queue_dock.toggleViewAction(), "queue")
        theme.bind_icon(self.training_dock.toggleViewAction(), "train")
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.queue_dock.toggleViewAction())
        self.toolbar.addAction(self.training_dock.toggleViewAction())
        self._size_docks()

    def _size_docks(self) -> None:
        w, h = self.width(), self.height()
        self.resizeDocks([self.queue_dock], [max(390, min(540, int(w * 0.3)))],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.training_dock], [max(250, min(340, int(h * 0.32)))],
                         Qt.Orientation.Vertical)

    def _setup_statusbar(self) -> None:
        sb = self.statusBar()
        self.st_project = QLabel("No project")
        self.st_annotator = QLabel("")
        self.st_run = QLabel("")
        self.st_run.setProperty("role", "muted")
        sb.addWidget(self.st_project, 1)
        sb.addPermanentWidget(self.st_run)
        sb.addPermanentWidget(self.st_annotator)
        self._refresh_annotator()

    def _setup_wiring(self) -> None:
        self.queue.sample_selected.connect(
            lambda sid, row: self.editor.show_sample(sid, prefetch=self.queue.neighbours(row)))
        self.editor.next_requested.connect(lambda: self.queue.step(+1))
        self.editor.previous_requested.connect(lambda: self.queue.step(-1))
        self.editor.edited.connect(self.queue.model.set_status)
        self.editor.sample_shown.connect(self.queue.follow)
        self.training.scores_written.connect(self._on_new_scores)
        self.queue.model.reset_done.connect(self._on_queue_reset)  # after the panel's own
        self.training.run_state_changed.connect(self.st_run.setText)
        self.queue.model.counts_changed.connect(lambda _c: self._update_title())
        self.queue.train_requested.connect(self.train_now)
        self.training.worker_started.connect(lambda: self.queue.set_training(True))
        self.training.worker_finished.connect(lambda: self.queue.set_training(False))

    def _restore_state(self) -> None:
        st = settings()
        geo = st.value("window/geometry")
        if isinstance(geo, QByteArray | bytes) and geo:
            self.restoreGeometry(geo)
        state = st.value("window/state")
        if isinstance(state, QByteArray | bytes) and state:
            self.restoreState(state)

    # ------------------------------------------------------------------ project
    def _may_stop_training(self) -> bool:
        """True if no training runs here, or the user agrees to stop it."""
        if not self.training.training_here or not self.confirm_close:
            return True
        ans = QMessageBox.question(
            self, "Training is running",
            "A training run is in progress. Stop it?\n"
            "(The run keeps its checkpoint; you can resume it later.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return ans == QMessageBox.StandardButton.Yes

    def open_project(self, path: str | Path) -> bool:
        if not self._may_stop_training():
            return False
        try:
            project = Project.open(path)
        except ProjectError as exc:
            QMessageBox.warning(self, "Cannot open project", str(exc))
            return False
        self.close_project()
        self.project = project
        schema = project.schema
        self.queue.model.set_project(project.path, () if schema is None else schema.keypoints,
                                     None if schema is None else schema.task)
        self.editor.set_project(project)
        self.training.set_project(project)
        st = settings()
        st.add_recent(project.path)
        self._update_title()
        if project.warnings:  # read-only, upgraded, on a network file system
            self.statusBar().showMessage("  ·  ".join(project.warnings))
        log.info("opened %s", project.path)
        return True

    def close_project(self) -> None:
        self.training.shutdown()
        self.queue.model.close()
        if self.project is not None:
            self.editor.set_project(None)
            self.training.set_project(None)
            self.project.close()
            self.project = None

    def _update_title(self) -> None:
        if self.project is None:
            self.setWindowTitle("Gumshoe")
            self.st_project.setText("No project: File ▸ Open or New")
            return
        name = self.project.path.name
        self.setWindowTitle(f"{name} — Gumshoe")
        counts = self.queue.model.counts
        total = sum(counts.values())
        schema = self.project.schema
        task = "no labels yet" if schema is None else (
            f"{schema.n_keypoints} landmarks" if schema.task == "landmarks" else "age")
        done = total - counts.get("unreviewed", 0)
        self.st_project.setText(f"{self.project.path}  ·  {total} samples, {task}  ·  "
                                f"{done} reviewed")

    def train_now(self, **overrides: Any) -> None:
        """Start training with the panel's settings (shown, so its curves are seen)."""
        self.training_dock.show()
        self.training_dock.raise_()
        self.training.start(**overrides)

    def _on_new_scores(self, run_id: int) -> None:
        # the first ranking of a project jumps to its top (what the first run is for);
        # a later one keeps the sample being edited and shows its new scores
        self._after_rerank = "top" if self.queue.model.run_id is None else "refresh"
        self.editor.run_id = None
        self.queue.model.refresh()
        tr = self.training
        done, total = tr.epochs_done()
        if tr.run_id == run_id and tr.is_running and isinstance(total, int) and done < total:
            # scores mid-run: say that more will come, and keep saying it until they do
            self.statusBar().showMessage(
                f"Queue ranked by run {run_id} after epoch {done} of {total}: the most "
                "doubtful labels are on top; it re-ranks as training goes on")
        else:
            self.statusBar().showMessage(
                f"Queue ranked by run {run_id}: the most doubtful labels are on top", 8000)

    def _on_queue_reset(self) -> None:
        self.editor.run_id = self.queue.model.run_id  # the side card shows the queue's run
        what, self._after_rerank = self._after_rerank, None
        if what == "top" and self.queue.model.run_id is not None:
            self.queue.table.scrollToTop()
            self.queue.select_row(0)
        elif what == "refresh" and self.editor.sample is not None and self.project is not None:
            self.editor.show_sample(self.editor.sample.id)

    def _refresh_annotator(self) -> None:
        self.st_annotator.setText(f"annotator: {settings().annotator}")

    # ------------------------------------------------------------------ file actions
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
        lines = [f"{a.text():<24} {', '.join(k.toString() for k in a.shortcuts())}"
                 for a in self.editor.actions_by_name.values()]
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(lines))

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

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._may_stop_training():
            event.ignore()
            return
        st = settings()
        st.set_value("window/geometry", self.saveGeometry())
        st.set_value("window/state", self.saveState())
        st.sync()
        self.close_project()
        self.editor.images.close()
        workers.stop_all()
        event.accept()


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
    if project_path:
        QTimer.singleShot(0, lambda: win.open_project(project_path))
    else:
        QTimer.singleShot(0, win.open_demo)
    rc = app.exec()
    workers.stop_all()
    return int(rc)
