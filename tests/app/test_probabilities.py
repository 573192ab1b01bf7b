"""Scores a person can read: P(wrong) in the queue, its filter and the export dialog."""

from __future__ import annotations

import csv

from PySide6.QtCore import Qt

from core.project import Project


def test_the_queue_shows_and_filters_by_probability(window, qtbot):
    panel = window.queue
    m, hh = panel.model, panel.table.horizontalHeader()
    assert m.headerData(5, Qt.Orientation.Horizontal) == "P(wrong)"
    assert not hh.isSectionHidden(5) and hh.isSectionHidden(4)  # the raw score is hidden
    top = m.row(0)
    assert m.data(m.index(0, 5)) in ("> 99 %", f"{top.outlier_prob * 100:.0f} %")
    assert all("%" in m.data(m.index(r, 5)) for r in range(m.rowCount()))
    with qtbot.waitSignal(m.reset_done, timeout=5000):
        panel.min_prob.setValue(60)
    probs = [m.row(r).outlier_prob for r in range(m.rowCount())]
    assert probs and min(probs) >= 0.6
    with Project.open(window.project.path) as p:
        want = sum(1 for r in p.scores(p.scored_run()).values() if r.outlier_prob >= 0.6)
    assert m.rowCount() == want
    assert "flagged:" in panel.counts.text()


def test_the_export_threshold_is_a_probability(qtbot, project_path, tmp_path):
    from app.dialogs.export_dialog import ExportDialog

    dlg = ExportDialog(project_path)
    qtbot.addWidget(dlg)
    dlg.fmt.setCurrentIndex(dlg.fmt.findData("csv"))
    dlg.out.setText(str(tmp_path / "clean.csv"))
    dlg.drop_doubtful.setChecked(True)
    dlg.max_prob.setValue(60)
    w = dlg.start()
    with qtbot.waitSignal(w.finished, timeout=30_000):
        pass
    assert w.error is None, w.error
    with Project.open(project_path) as p:
        scores = p.scores(p.scored_run())
        doubtful = {p.sample(s).key for s, r in scores.items() if r.outlier_prob > 0.6}
    with open(tmp_path / "clean.csv", newline="") as f:
        written = {row["image"] for row in csv.DictReader(f)}
    assert doubtful and not doubtful & written
    assert dlg.result["written"] == 40 - len(doubtful)
