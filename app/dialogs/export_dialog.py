"""Export the project: any writer in ``core.formats.WRITERS`` and the options of
``core.export.export``; runs in a worker and ends with the change report. An export
that would replace files asks first (never the project: that is refused)."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.workers import Worker, WorkerContext

REPORT_PREVIEW = ("key", "review_status", "exported", "dropped_because", "changed_landmarks",
                  "origin", "who", "why")


def run_export(ctx: WorkerContext, out: str, fmt: str, options: dict[str, Any]) -> dict[str, Any]:
    from core.export import export

    project = ctx.project()
    total = project.count_samples()  # progress gives (done, last key): the bar needs a total
    res = export(project, out, fmt, progress=lambda done, _key: ctx.emit((int(done), total)),
                 **options)
    return {"out": str(res.out), "written": res.written, "dropped": dict(res.dropped),
            "changes": res.changes,
            "report_csv": None if res.report_csv is None else str(res.report_csv),
            "report_json": None if res.report_json is None else str(res.report_json)}


class ExportDialog(QDialog):
    def __init__(self, project_path: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export the dataset")
        self.setMinimumSize(680, 420)
        self.project_path = Path(project_path)
        self.worker: Worker | None = None
        self.result: dict[str, Any] | None = None
        self.confirm: QMessageBox | None = None  # the "replace?" question while it is open
        from core.formats import WRITERS

        v = QVBoxLayout(self)
        form = QFormLayout()
        self.fmt = QComboBox()
        for name in WRITERS:
            self.fmt.addItem(name, name)
        self.fmt.currentIndexChanged.connect(self._suggest)
        form.addRow("Format", self.fmt)
        row = QHBoxLayout()
        self.out = QLineEdit()
        row.addWidget(self.out, 1)
        pick = QPushButton("Browse…")
        pick.clicked.connect(self._pick)
        row.addWidget(pick)
        form.addRow("Write to", row)
        self.labels = QComboBox()
        self.labels.addItem("Current labels (with fixes)", True)
        self.labels.addItem("Labels as imported", False)
        form.addRow("Labels", self.labels)
        self.drop_excluded = QCheckBox("Leave out excluded samples")
        self.drop_excluded.setChecked(True)
        self.reviewed_only = QCheckBox("Only reviewed samples")
        form.addRow("", self.drop_excluded)
        form.addRow("", self.reviewed_only)
        self.max_score = QDoubleSpinBox()
        self.max_score.setRange(-1000, 1000)
        self.max_score.setDecimals(1)
        self.max_score.setSpecialValueText("keep all")
        self.max_score.setValue(-1000)
        self.max_score.setToolTip("Leave out samples whose outlier score is above this")
        form.addRow("Max outlier score", self.max_score)
        v.addLayout(form)
        self.progress = QProgressBar()
        self.progress.hide()
        v.addWidget(self.progress)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        v.addWidget(self.summary)
        self.report = QTableWidget(0, len(REPORT_PREVIEW))
        self.report.setHorizontalHeaderLabels(list(REPORT_PREVIEW))
        self.report.horizontalHeader().setStretchLastSection(True)
        self.report.setAlternatingRowColors(True)
        self.report.hide()
        v.addWidget(self.report, 1)
        bb = QDialogButtonBox()
        self.go = bb.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.go.setProperty("primary", True)
        bb.addButton(QDialogButtonBox.StandardButton.Close)
        bb.accepted.connect(self.start)
        bb.rejected.connect(self.reject)
        v.addWidget(bb)
        self._suggest()

    def _suggest(self) -> None:
        fmt = self.fmt.currentData()
        stem = self.project_path.with_suffix("").name + "-clean"
        out = self.project_path.parent / (stem if fmt == "pts" else f"{stem}.{'json' if fmt == 'coco' else fmt}")
        self.out.setText(str(out))

    def _pick(self) -> None:
        if self.fmt.currentData() == "pts":
            d = QFileDialog.getExistingDirectory(self, "Export folder")
        else:
            # Export asks before replacing anything (with the report files too)
            d, _ = QFileDialog.getSaveFileName(self, "Export file", self.out.text(),
                                               options=QFileDialog.Option.DontConfirmOverwrite)
        if d:
            self.out.setText(d)

    def options(self) -> dict[str, Any]:
        ms = self.max_score.value()
        return {"current": bool(self.labels.currentData()),
                "drop_excluded": self.drop_excluded.isChecked(),
                "reviewed_only": self.reviewed_only.isChecked(),
                "max_score": None if ms <= -1000 else ms}

    def replaced_by(self, out: str, fmt: str) -> list[Path] | None:
        """The files an export to ``out`` would replace ([] for a new place), or None
        after showing why it must not write there."""
        from core.export import preflight
        from core.project import Project

        try:
            with Project.open(self.project_path) as project:
                return preflight(project, out, fmt, overwrite=True)
        except (ValueError, OSError) as exc:  # ExportTargetError, ProjectError, ...
            self.summary.setText(f"<span style='color:#e5484d'>Cannot export there: "
                                 f"{html.escape(str(exc))}</span>")
            return None

    def ask_replace(self, paths: list[Path]) -> bool:
        """Ask before replacing ``paths``; the answer (default No)."""
        names = "\n".join(f"  {p}" for p in paths)
        self.confirm = QMessageBox(
            QMessageBox.Icon.Warning, "Replace the earlier export?",
            f"These already exist and will be replaced:\n{names}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        self.confirm.setDefaultButton(QMessageBox.StandardButton.No)
        self.confirm.button(QMessageBox.StandardButton.Yes).setText("Replace")
        try:
            return self.confirm.exec() == QMessageBox.StandardButton.Yes
        finally:
            self.confirm = None

    def start(self) -> Worker | None:
        out = self.out.text().strip()
        if not out:
            return None
        fmt = self.fmt.currentData()
        replaced = self.replaced_by(out, fmt)
        if replaced is None or (replaced and not self.ask_replace(replaced)):
            return None
        self.go.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.summary.setText("")
        options = {**self.options(), "overwrite": bool(replaced)}
        self.worker = Worker(run_export, out, fmt, options,
                             name="export", project_path=self.project_path)
        self.worker.report_errors = False
        self.worker.progress.connect(self._on_progress)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.worker.start()
        return self.worker

    def _on_progress(self, msg: tuple[int, int]) -> None:
        done, total = msg
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_done(self, res: dict[str, Any]) -> None:
        self.result = res
        self.progress.hide()
        self.go.setEnabled(True)
        dropped = ", ".join(f"{n} {why}" for why, n in res["dropped"].items()) or "none"
        self.summary.setText(
            f"Wrote <b>{res['written']}</b> samples to {res['out']}<br>"
            f"left out: {dropped}<br>change report: <b>{res['changes']}</b> rows in "
            f"{res['report_csv']}")
        self._show_report(res["report_csv"])

    def _show_report(self, path: str | None, limit: int = 500) -> None:
        if not path or not Path(path).exists():
            return
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for _, r in zip(range(limit), csv.DictReader(f), strict=False)]
        self.report.setRowCount(len(rows))
        for i, r in enumerate(rows):
            for j, k in enumerate(REPORT_PREVIEW):
                self.report.setItem(i, j, QTableWidgetItem(r.get(k, "")))
        self.report.resizeColumnsToContents()
        self.report.setVisible(True)

    def _on_failed(self, message: str, _tb: str) -> None:
        self.progress.hide()
        self.go.setEnabled(True)
        self.summary.setText(f"<span style='color:#e5484d'>Export failed: {message}</span>")

    def done(self, r: int) -> None:
        if self.worker is not None and self.worker.isRunning():
            self.worker.stop_and_join()
        super().done(r)
