"""The store as the GUI uses it: a queue page (what the queue worker runs) in at most
three SQL statements; an edit over another annotator's newer version is not saved
(the marker goes back, the editor says why); an undo never reverts someone else's
edit; a read-only project says so and refuses edits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from app.review import queue_worker
from core.project import Project

REPO = Path(__file__).resolve().parents[2]


def test_a_queue_page_costs_at_most_three_statements(project_path):
    """On today's main one page of 200 rows ran 603 statements (a score and a sample
    lookup per row)."""
    with Project.open(project_path) as p:
        run = p.scored_run()
        seen: list[str] = []
        p.conn.set_trace_callback(seen.append)
        flt = queue_worker.QueueFilter()
        rows = queue_worker._fetch_rows(p, flt, run, 0)
        first = len(seen)
        ids = p.queue_ids(run_id=run)
        seen.clear()
        later = queue_worker._fetch_rows(p, flt, run, 0, snapshot=ids[::-1].copy())
        p.conn.set_trace_callback(None)
    assert len(rows) == 40 and first <= 3, first
    assert [r.sample_id for r in later] == ids[::-1].tolist() and len(seen) == 1
    assert rows[0].worst_landmark == 2 and rows[0].key.startswith("face_")


def _drag(canvas, i: int, by: QPoint) -> None:
    vp = canvas.viewport()
    start = canvas.mapFromScene(canvas.marker_scene_pos(i))
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(vp, start + QPoint(by.x() // 2, by.y() // 2))
    QTest.mouseMove(vp, start + by)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + by)


def _other_annotator(path: Path, sid: int) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from core.project import Project
        with Project.open({str(path)!r}) as p:
            cur = p.current_label({sid})
            p.add_label({sid}, points=cur.points + 7.0, author="bob", replaces=cur.id)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_edit_over_a_newer_version_is_not_saved_and_says_why(window, project_path):
    ed = window.editor
    sid = ed.sample.id
    shown = ed.label.points.copy()
    _other_annotator(project_path, sid)  # bob saves while the editor shows the old version
    _drag(ed.canvas, 2, QPoint(30, 12))
    assert "Not saved" in ed.hint.text() and "bob" in ed.hint.text()
    with Project.open(project_path) as p:
        cur = p.current_label(sid)
        assert cur.author == "bob" and len(p.label_history(sid)) == 2  # nothing of ours
    # the marker went back: the editor shows the stored (bob's) version now
    np.testing.assert_allclose(ed.canvas.points, shown + 7.0)
    np.testing.assert_allclose(ed.label.points, shown + 7.0)
    # and the next edit, on what is shown, goes through
    _drag(ed.canvas, 2, QPoint(20, 0))
    with Project.open(project_path) as p:
        assert len(p.label_history(sid)) == 3 and p.current_label(sid).replaces == cur.id


def test_undo_does_not_revert_someone_elses_edit(window, project_path):
    ed = window.editor
    sid = ed.sample.id
    _drag(ed.canvas, 2, QPoint(30, 12))
    assert ed.history.can_undo()
    _other_annotator(project_path, sid)
    ed.undo()
    assert "Not undone" in ed.hint.text() and "bob" in ed.hint.text()
    with Project.open(project_path) as p:
        assert p.current_label(sid).author == "bob"
        assert [lab.origin for lab in p.label_history(sid)] == ["import", "annotator", "annotator"]
    # our own undo/redo chain still works when nobody else intervenes
    _drag(ed.canvas, 1, QPoint(10, 10))
    ed.undo()
    ed.redo()
    with Project.open(project_path) as p:
        hist = p.label_history(sid)
        assert [h.note.split(":")[0] for h in hist[-3:]] == ["moved left_eye", "undo", "redo"]


def test_a_read_only_project_says_so(qtbot, tmp_path, project_path):
    """A project another process holds: opened read-only, the status bar says why, an
    edit is not saved and says why."""
    from tests.app.conftest import open_window

    with Project.open(project_path) as p:
        copy = p.backup(tmp_path / "copy.gumshoe")  # rollback-journal mode, one file
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, time
        c = sqlite3.connect({str(copy)!r}, isolation_level=None)
        c.execute("BEGIN"); c.execute("SELECT count(*) FROM samples").fetchall()
        print("reading", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        win = open_window(qtbot, copy)
        assert win.project.read_only
        assert "locked by another process" in win.statusBar().currentMessage()
        ed = win.editor
        _drag(ed.canvas, 2, QPoint(30, 12))
        assert "Not saved" in ed.hint.text() and "read-only" in ed.hint.text()
        win.close()
    finally:
        reader.kill()
        reader.wait()
