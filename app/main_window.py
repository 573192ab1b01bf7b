"""The main window (thin: it builds widgets and wires signals; logic is in core/).
``app.startup.run_gui`` creates the application around it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QWidget,
)

from app import qtfix, theme, workers
from app.file_actions import FileActions
from app.review.editor import EditorWidget
from app.review.history_panel import HistoryPanel
from app.review.queue_panel import QueuePanel
from app.settings import settings
from app.training.panel import TrainingPanel
from core.project import REVIEW_STATUSES, Project, ProjectError

log = logging.getLogger(__name__)

# the docks' layout saved on close; a layout saved by an older version (without the
# history dock, which shares the bottom with the training) is not restored
STATE_VERSION = 2


class MainWindow(FileActions, QMainWindow):
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
        self.history = HistoryPanel()

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
        for name in ("next", "previous", "next_flag", "previous_flag", "next_point",
                     "previous_point", None, "accept", "accept_all", "accept_every", "confirm",
                     "exclude", None, "visibility", "swap", None,
                     "undo", "redo", None, "fit", "zoom_in", "zoom_out", "model", "predictions"):
            if name is None:
                e.addSeparator()
            else:
                e.addAction(a[name])
        self.view_menu = mb.addMenu("&View")
        h = mb.addMenu("&Help")
        self.act_keys = self._act("&Keyboard and mouse", self._show_keys, "keyboard", "F1",
                                  "Every key and mouse action")
        h.addAction(self.act_keys)
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
        self.history_dock = self._dock("History", self.history, "history-dock",
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.history_dock)
        self.training_dock.raise_()
        theme.bind_icon(self.queue_dock.toggleViewAction(), "queue")
        theme.bind_icon(self.training_dock.toggleViewAction(), "train")
        self.history_dock.visibilityChanged.connect(lambda _v: self._refresh_history())
        # H brings the history to the front (it shares the bottom with the training)
        self.act_history = self._act("History", self._toggle_history, "history", "H",
                                     "The sample's label versions and review decisions (H)")
        self.act_history.setCheckable(True)
        self.history_dock.visibilityChanged.connect(
            lambda _v: self.act_history.setChecked(self._history_seen()))
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.queue_dock.toggleViewAction())
        self.toolbar.addAction(self.training_dock.toggleViewAction())
        self.toolbar.addAction(self.act_history)
        self._size_docks()

    def _size_docks(self) -> None:
        w, h = self.width(), self.height()
        self.resizeDocks([self.queue_dock], [max(400, min(540, int(w * 0.3)))],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.training_dock], [max(270, min(360, int(h * 0.34)))],
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
        self.editor.edited.connect(lambda _sid, _status: self.queue.note_review())
        self.editor.sample_shown.connect(self.queue.follow)
        self.editor.sample_shown.connect(lambda _sid: self._refresh_history())
        self.editor.history_changed.connect(self._refresh_history)
        self.editor.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.history.diff_requested.connect(self.editor.show_diff)
        self.history.restore_requested.connect(self.editor.restore_version)
        self.training.scores_written.connect(self._on_new_scores)
        self.queue.model.reset_done.connect(self._on_queue_reset)  # after the panel's own
        self.training.run_state_changed.connect(self.st_run.setText)
        self.training.run_state_changed.connect(self._on_run_state)
        self.queue.model.counts_changed.connect(lambda _c: self._update_title())
        self.queue.train_requested.connect(self.train_now)
        self.queue.batch_requested.connect(self.editor.review_many)
        self.training.busy_changed.connect(self.queue.set_training)
        self.queue.show_training_requested.connect(self._show_training)

    def _restore_state(self) -> None:
        st = settings()
        geo = st.value("window/geometry")
        if isinstance(geo, QByteArray | bytes) and geo:
            self.restoreGeometry(geo)
        state = st.value("window/state")
        if isinstance(state, QByteArray | bytes) and state:
            self.restoreState(state, STATE_VERSION)  # an older layout is ignored

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
        self.queue.forget_selection()
        schema = project.schema
        self.queue.model.set_project(project.path, () if schema is None else schema.keypoints,
                                     None if schema is None else schema.task)
        self.editor.set_project(project)
        self.training.set_project(project)
        st = settings()
        st.add_recent(project.path)
        self._update_title()
        self.editor.setFocus()  # the keys act on the sample from the start
        if project.warnings:  # read-only, upgraded, on a network file system
            self.statusBar().showMessage("  ·  ".join(project.warnings))
        log.info("opened %s", project.path)
        return True

    def close_project(self) -> None:
        self.training.shutdown()
        self.queue.model.close()
        self.history.clear()
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
        total = sum(counts.get(s, 0) for s in REVIEW_STATUSES)
        schema = self.project.schema
        task = "no labels yet" if schema is None else (
            f"{schema.n_keypoints} landmarks" if schema.task == "landmarks" else "age")
        done = total - counts.get("unreviewed", 0)
        self.st_project.setText(f"{self.project.path}  ·  {total} samples, {task}  ·  "
                                f"{done} reviewed")

    def _show_training(self) -> None:
        self.training_dock.show()
        self.training_dock.raise_()

    def train_now(self, **overrides: Any) -> None:
        """Start training with the panel's settings (shown, so its curves are seen)."""
        self.training_dock.show()
        self.training_dock.raise_()
        self.training.start(**overrides)

    def _on_new_scores(self, run_id: int) -> None:
        # the first ranking of a project jumps to its top (what the first run is for);
        # a later one keeps the sample being edited and shows its new scores
        self._after_rerank = "top" if self.queue.model.run_id is None else "refresh"
        self.editor.set_run(None, None)
        self.queue.model.refresh()
        tr = self.training
        done, total = tr.epochs_done()
        if tr.run_id == run_id and tr.is_running and isinstance(total, int) and done < total:
            # scores mid-run: say that more will come, and keep saying it until they do
            self.statusBar().showMessage(
                f"Queue ranked by run {run_id} after epoch {done} of {total}: the most "
                "doubtful labels are on top; it re-ranks as training goes on")
            self._ranked_mid_run = run_id
        else:
            self._ranked_final(run_id)

    _ranked_mid_run: int | None = None

    def _ranked_final(self, run_id: int) -> None:
        self._ranked_mid_run = None
        self.statusBar().showMessage(
            f"Queue ranked by run {run_id}: the most doubtful labels are on top", 8000)

    def _on_run_state(self, _line: str) -> None:
        """The run that ranked the queue mid-run ended (its last scores were the final
        ones, written before its last epoch showed): the status bar no longer says
        more will come."""
        if self._ranked_mid_run is not None and not self.training.is_running:
            self._ranked_final(self._ranked_mid_run)

    def _on_queue_reset(self) -> None:
        # the editor shows the queue's run
        self.editor.set_run(self.queue.model.run_id, self.queue.model.run_method)
        what, self._after_rerank = self._after_rerank, None
        if what == "top" and self.queue.model.run_id is not None:
            self.queue.table.scrollToTop()
            self.queue.select_row(0)
        elif what == "refresh" and self.editor.sample is not None and self.project is not None:
            self.editor.show_sample(self.editor.sample.id)

    def _history_seen(self) -> bool:
        d = self.history_dock
        return d.isVisible() and not d.visibleRegion().isEmpty()

    def _toggle_history(self) -> None:
        if self._history_seen():
            self.history_dock.hide()
        else:
            self.history_dock.show()
            self.history_dock.raise_()
        self.act_history.setChecked(self._history_seen())
        self._refresh_history()

    def _refresh_history(self) -> None:
        """List the shown sample's history (only while the dock is seen: two queries)."""
        st = self.editor.state
        if st is None or self.project is None:
            self.history.clear()
        elif self._history_seen():
            names = () if self.project.schema is None else self.project.schema.keypoints
            self.history.show_history(self.project, st.sample.id, names)

    def ask_annotator_if_unknown(self) -> bool:
        """First start: ask who is annotating (the OS account offered). True if asked."""
        st = settings()
        if st.annotator_named:
            return False
        from app.dialogs.annotator_dialog import AnnotatorDialog

        dlg = AnnotatorDialog(self)
        dlg.exec()
        st.annotator = dlg.chosen()  # closed without an answer: the OS account, asked once
        st.sync()
        self._refresh_annotator()
        return True

    def _refresh_annotator(self) -> None:
        self.st_annotator.setText(f"annotator: {settings().annotator}")

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._may_stop_training():
            event.ignore()
            return
        st = settings()
        st.set_value("window/geometry", self.saveGeometry())
        st.set_value("window/state", self.saveState(STATE_VERSION))
        st.sync()
        self.close_project()
        self.editor.images.close()
        workers.stop_all()
        event.accept()
