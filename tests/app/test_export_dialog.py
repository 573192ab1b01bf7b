"""The export dialog asks before replacing an earlier export and refuses to write
over the project (issue 10, item 2), with a real dialog and a real worker."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from core.project import Project


def _answer(dlg, button: QMessageBox.StandardButton, seen: list[str]) -> None:
    """Click ``button`` on the dialog's question as soon as it is open."""

    def click() -> None:
        if dlg.confirm is None or not dlg.confirm.isVisible():
            QTimer.singleShot(20, click)
            return
        seen.append(dlg.confirm.text())
        dlg.confirm.button(button).click()

    QTimer.singleShot(20, click)


def _run(dlg, qtbot) -> None:
    w = dlg.start()
    assert w is not None
    with qtbot.waitSignal(w.finished, timeout=30_000):
        pass
    assert w.error is None, w.error


def test_export_dialog_asks_before_replacing(qtbot, project_path: Path, tmp_path: Path) -> None:
    from app.dialogs.export_dialog import ExportDialog

    dlg = ExportDialog(project_path)
    qtbot.addWidget(dlg)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("csv"))
    out = tmp_path / "clean.csv"
    dlg.out.setText(str(out))
    _run(dlg, qtbot)  # a new place: no question
    first = out.read_bytes()
    out.write_text("edited by hand\n")

    seen: list[str] = []
    _answer(dlg, QMessageBox.StandardButton.No, seen)
    assert dlg.start() is None
    assert len(seen) == 1 and "clean.csv" in seen[0] and "clean.changes.csv" in seen[0]
    assert out.read_text() == "edited by hand\n"

    _answer(dlg, QMessageBox.StandardButton.Yes, seen)
    _run(dlg, qtbot)
    assert len(seen) == 2 and out.read_bytes() == first


def test_export_dialog_refuses_the_project_file(qtbot, project_path: Path) -> None:
    from app.dialogs.export_dialog import ExportDialog

    with Project.open(project_path) as p:
        n = p.count_samples()
    dlg = ExportDialog(project_path)
    qtbot.addWidget(dlg)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("csv"))
    dlg.out.setText(str(project_path))
    assert dlg.start() is None
    assert dlg.confirm is None
    assert "Cannot export there" in dlg.summary.text() and "project file" in dlg.summary.text()
    with Project.open(project_path) as p:
        assert p.count_samples() == n
