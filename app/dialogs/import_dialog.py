"""Import a dataset source: any reader in ``core.formats.READERS``, with progress
in a worker and the list of skipped files with their reasons."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.workers import Worker, WorkerContext


def run_import(ctx: WorkerContext, source: str, fmt: str, task: str | None,
               noise: str | None) -> dict[str, Any]:
    """Worker: import with this thread's project connection; returns plain values."""
    from core.importer import import_source

    res = import_source(ctx.project(), source, fmt, task, noise=noise,
                        progress=lambda n, msg="": ctx.emit((n, str(msg))),
                        should_stop=ctx.should_stop)
    from core.schemas import schema_rows

    schema = schema_rows(res.schema) if res.new_schema and res.schema is not None else []
    return {"added": res.added, "existing": res.existing, "format": res.format,
            "task": res.task, "seconds": res.seconds, "stopped": res.stopped,
            "skipped": [(s.path, s.reason) for s in res.skipped], "schema": schema}


class ImportDialog(QDialog):
    imported = Signal(dict)

    def __init__(self, project_path: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a dataset")
        self.setMinimumWidth(620)
        self.project_path = Path(project_path)
        self.worker: Worker | None = None
        self.result: dict[str, Any] | None = None
        from core.formats import READERS

        self._readers = READERS
        v = QVBoxLayout(self)
        form = QFormLayout()
        row = QHBoxLayout()
        self.source = QLineEdit()
        self.source.setPlaceholderText("A dataset folder or label file")
        row.addWidget(self.source, 1)
        b1 = QPushButton("Folder…")
        b1.clicked.connect(self._pick_folder)
        b2 = QPushButton("File…")
        b2.clicked.connect(self._pick_file)
        row.addWidget(b1)
        row.addWidget(b2)
        form.addRow("Source", row)
        self.fmt = QComboBox()
        self.fmt.addItem("Detect automatically", "auto")
        for name in READERS:
            self.fmt.addItem(name, name)
        self.fmt.currentIndexChanged.connect(self._fill_tasks)
        form.addRow("Format", self.fmt)
        self.task = QComboBox()
        form.addRow("Task", self.task)
        self.noise = QLineEdit()
        self.noise.setPlaceholderText("optional, for benchmarks: e.g. l-ugo:0.2")
        form.addRow("Synthetic noise", self.noise)
        v.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.hide()
        v.addWidget(self.progress)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        v.addWidget(self.summary)
        self.skipped = QListWidget()
        self.skipped.setAlternatingRowColors(True)
        self.skipped.hide()
        v.addWidget(self.skipped, 1)
        self.buttons = QDialogButtonBox()
        self.go = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.go.setProperty("primary", True)
        self.cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        v.addWidget(self.buttons)
        self._fill_tasks()

    def _fill_tasks(self) -> None:
        self.task.clear()
        name = self.fmt.currentData()
        tasks = ("landmarks", "age") if name == "auto" else self._readers[name].tasks
        if name == "auto":
            self.task.addItem("format's default", None)
        for t in tasks:
            self.task.addItem(t, t)

    def _pick_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if d:
            self.source.setText(d)

    def _pick_file(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Label file")
        if f:
            self.source.setText(f)

    def start(self) -> Worker | None:
        src = self.source.text().strip()
        if not src:
            self.summary.setText("Choose a source first.")
            return None
        self.go.setEnabled(False)
        self.progress.show()
        self.summary.setText("Importing…")
        self.worker = Worker(run_import, src, self.fmt.currentData(), self.task.currentData(),
                             self.noise.text().strip() or None, name="import",
                             project_path=self.project_path)
        self.worker.report_errors = False
        self.worker.progress.connect(self._on_progress)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.start()
        return self.worker

    def _on_progress(self, msg: tuple[int, str]) -> None:
        n, last = msg
        self.summary.setText(f"{n} items read… {Path(last).name if last else ''}")

    def _on_done(self, res: dict[str, Any]) -> None:
        self.result = res
        self.progress.hide()
        self.go.setEnabled(True)
        sk = res["skipped"]
        self.summary.setText(
            f"<b>{res['added']}</b> samples added ({res['format']}, {res['task']})"
            + (f", {res['existing']} already there" if res["existing"] else "")
            + f", <b>{len(sk)}</b> skipped, in {res['seconds']:.1f} s"
            + (" (stopped)" if res["stopped"] else "")
            # the keypoints, flip pairs (check those inferred from names) and skeleton
            + "".join(f"<br><b>{html.escape(what.capitalize())}:</b> {html.escape(value)}"
                      for what, value in res.get("schema", [])))
        self.skipped.clear()
        for path, reason in sk:
            self.skipped.addItem(f"{path}: {reason}")
        self.skipped.setVisible(bool(sk))
        self.imported.emit(res)

    def _on_failed(self, message: str, _tb: str) -> None:
        self.progress.hide()
        self.go.setEnabled(True)
        self.summary.setText(f"<span style='color:#e5484d'>Import failed: {message}</span>")

    def reject(self) -> None:
        if self.worker is not None and self.worker.isRunning():
            self.worker.stop_and_join()
        super().reject()

    def closeEvent(self, event) -> None:  # noqa: ANN001
        if self.worker is not None and self.worker.isRunning():
            self.worker.stop_and_join()
        super().closeEvent(event)

