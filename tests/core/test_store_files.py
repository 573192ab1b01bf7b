"""The project file as a file: crafted files refused on open in one line (a trigger
that rewrites edits, a view in place of a table, garbage or deeply nested JSON), a
read-only folder or file and a locked file open read-only for viewing and export,
closing folds the WAL into the file, `gumshoe backup` copies a project that is in
use, and a network file system is named with a warning."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.project import (
    LabelSchema,
    NewSample,
    Project,
    ProjectError,
    ReadOnlyProjectError,
    ScoreRow,
)
from core.store import files

REPO = Path(__file__).resolve().parents[2]
SCHEMA = LabelSchema("landmarks", "tri", ("a", "b", "c"))


def make(folder: Path, n: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "p.gumshoe"
    with Project.create(path, SCHEMA) as p:
        src = p.add_source(folder, "csv", "landmarks")
        p.add_samples(src, [NewSample(f"k{i}", f"img{i}.png", 100, 80, f"h{i}",
                                      points=np.full((3, 2), float(i)), box=(0, 0, 50, 40))
                            for i in range(n)])
        run = p.create_run("deepgum", {"config": {"epochs": 1}})
        p.write_scores(run, [ScoreRow(i, float(i), 0.5, [0.0, 1.0, 2.0]) for i in range(1, n + 1)])
        p.add_label(2, points=np.full((3, 2), 9.0), author="ann")
    return path


def gumshoe(*args: object, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gumshoe: error:"), out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- crafted files


def _tamper(path: Path, *sql: str) -> None:
    conn = sqlite3.connect(path)
    for stmt in sql:
        conn.execute(stmt)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("sql, shown", [
    (["CREATE TRIGGER rewrite AFTER INSERT ON labels BEGIN UPDATE labels SET points = NULL "
      "WHERE id = NEW.id; DELETE FROM review_events; END"], "unexpected trigger rewrite"),
    (["CREATE TRIGGER loop AFTER UPDATE ON samples BEGIN UPDATE samples SET split = split; END"],
     "unexpected trigger loop"),
    (["ALTER TABLE samples RENAME TO samples_real",
      "CREATE VIEW samples AS SELECT * FROM samples_real"], "samples"),
    (["ALTER TABLE labels ADD COLUMN extra TEXT"], "different table labels"),
    (["CREATE INDEX sneaky ON labels(note)"], "unexpected index sneaky"),
    (["DROP VIEW score_arrays", "CREATE VIEW score_arrays AS SELECT 1"],
     "different view score_arrays"),
])
def test_an_altered_schema_is_refused_in_one_line(tmp_path: Path, sql: list[str],
                                                  shown: str) -> None:
    path = make(tmp_path)
    _tamper(path, "PRAGMA legacy_alter_table = ON", *sql)
    with pytest.raises(ProjectError, match="refused: its schema is not the one Gumshoe writes"):
        Project.open(path)
    out = gumshoe("info", path)
    one_line_error(out, str(path), shown)
    one_line_error(gumshoe("export", path, tmp_path / "out.csv", "--format", "csv"), "refused")


def test_garbage_json_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = make(tmp_path)
    _tamper(path, "UPDATE runs SET params = '{\"config\": '")
    one_line_error(gumshoe("rank", path), "run 1", "malformed run params")
    path = make(tmp_path / "deep")
    _tamper(path, "UPDATE meta SET value = '" + "[" * 100_000 + "' WHERE key = 'label_schema'")
    one_line_error(gumshoe("info", path), "label schema")
    path = make(tmp_path / "box")
    _tamper(path, "UPDATE samples SET box = '[1, 2]' WHERE id = 3")
    with Project.open(path) as p, pytest.raises(ProjectError, match="sample 3: malformed box"):
        p.samples()
    out = gumshoe("export", path, tmp_path / "box.csv", "--format", "csv")
    one_line_error(out, "sample 3", "malformed box")
    path = make(tmp_path / "pts")
    _tamper(path, "UPDATE labels SET points = x'0102' WHERE id = 1")
    with Project.open(path) as p, pytest.raises(ProjectError, match="label 1 .sample 1.: malformed"):
        p.original_label(1)


def test_strict_tables_refuse_wrong_types(tmp_path: Path) -> None:
    path = make(tmp_path)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="cannot store TEXT value in INTEGER column"):
        conn.execute("UPDATE samples SET width = 'wide' WHERE id = 1")
    conn.close()


# --------------------------------------------------------------------------- read-only


@contextlib.contextmanager
def unwritable(target: Path) -> Iterator[None]:
    """Make ``target`` unwritable, for root too (chattr +i), or skip."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    res = subprocess.run(["chattr", "+i", str(target)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot make {target} immutable here: {res.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)


def test_a_read_only_folder_opens_for_viewing_and_export(tmp_path: Path) -> None:
    path = make(tmp_path / "shared")
    with unwritable(path.parent):
        with Project.open(path) as p:
            assert p.read_only and p.read_only_reason == "its folder is read-only"
            assert p.current_label(2).points[0, 0] == 9.0 and len(p.queue()) == 5
            with pytest.raises(ReadOnlyProjectError, match="open read-only"):
                p.add_label(1, points=np.zeros((3, 2)))
            with pytest.raises(ReadOnlyProjectError):
                p.set_review(1, "confirmed")
        out = gumshoe("info", path)
        assert out.returncode == 0 and "read-only" in out.stdout, out.stderr
        out = gumshoe("export", path, tmp_path / "clean.csv", "--format", "csv")
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "clean.csv").read_text().count("\n") == 6


def test_a_read_only_file_opens_read_only(tmp_path: Path) -> None:
    path = make(tmp_path)
    with unwritable(path), Project.open(path) as p:
        assert p.read_only, p.read_only_reason
        assert p.count_samples() == 5
        with pytest.raises(ReadOnlyProjectError, match=str(path)):
            p.add_label(1, points=np.zeros((3, 2)))


def _hold(path: Path, mode: str) -> subprocess.Popen:
    """Another process holding the file: an exclusive lock, or a read transaction."""
    setup = {"exclusive": "c.execute('PRAGMA locking_mode = EXCLUSIVE'); "
                          "c.execute('BEGIN EXCLUSIVE'); c.execute('SELECT count(*) FROM samples')",
             "reading": "c.execute('BEGIN'); c.execute('SELECT count(*) FROM samples').fetchall()"}
    code = textwrap.dedent(f"""
        import sqlite3, time
        c = sqlite3.connect({str(path)!r}, isolation_level=None)
        {setup[mode]}
        print("holding", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_locked_project_is_named_locked(tmp_path: Path) -> None:
    path = make(tmp_path)
    # a file held exclusively cannot even be read: one line that says so
    proc = _hold(path, "exclusive")
    try:
        t0 = time.monotonic()
        with pytest.raises(ProjectError, match="locked by another process"):
            Project.open(path)
        assert time.monotonic() - t0 < 10
        one_line_error(gumshoe("info", path), "locked by another process")
    finally:
        proc.kill()
        proc.wait()
    # a copy in rollback-journal mode that another process is reading: read-only
    with Project.open(path) as p:
        copy = p.backup(tmp_path / "copy.gumshoe")
    proc = _hold(copy, "reading")
    try:
        with Project.open(copy) as p:
            assert p.read_only and "locked by another process" in p.read_only_reason
            assert p.current_label(2).points[0, 0] == 9.0
            assert any("viewing and export only" in w for w in p.warnings)
    finally:
        proc.kill()
        proc.wait()
    with Project.open(copy) as p:  # free again: read-write
        assert not p.read_only
        p.add_label(1, points=np.zeros((3, 2)))


# --------------------------------------------------------------------------- copies


def test_closing_folds_the_wal_into_the_file(tmp_path: Path) -> None:
    """Edits made while another connection (the GUI's queue worker, a viewer) keeps the
    project open are in the .gumshoe file itself once the editor closes, so a plain
    copy of that file alone holds them."""
    path = make(tmp_path)
    viewer = Project.open(path)
    try:
        editor = Project.open(path)
        for i in range(1, 6):
            editor.add_label(i, points=np.full((3, 2), 100.0 + i), author="ann")
        editor.close()
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        shutil.copy(path, tmp_path / "plain-copy.gumshoe")
    finally:
        viewer.close()
    with Project.open(tmp_path / "plain-copy.gumshoe") as p:
        assert [p.current_label(i).points[0, 0] for i in range(1, 6)] == \
            [101.0, 102.0, 103.0, 104.0, 105.0]


def test_backup_copies_a_project_in_use(tmp_path: Path) -> None:
    path = make(tmp_path)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from core.project import Project
        p = Project.open({str(path)!r})
        i = 0
        while True:
            p.add_label(1 + i % 5, points=np.full((3, 2), float(i)), author="w")
            print(i, flush=True)
            i += 1
    """)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(50):
            done = int(writer.stdout.readline())
        out = gumshoe("backup", path, tmp_path / "b.gumshoe")
        assert out.returncode == 0, out.stderr
        assert "b.gumshoe: copy of" in out.stdout
    finally:
        writer.kill()
        writer.wait()
    with sqlite3.connect(tmp_path / "b.gumshoe") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    assert not (tmp_path / "b.gumshoe-wal").exists()
    with Project.open(tmp_path / "b.gumshoe") as b:
        n = b.conn.execute("SELECT count(*) FROM labels WHERE author = 'w'").fetchone()[0]
        assert n >= done + 1
    one_line_error(gumshoe("backup", path, tmp_path / "b.gumshoe"), "already exists")


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /home rw,relatime shared:20 - ext4 /dev/sda2 rw
41 40 0:36 / /home/lab/shared\\040data rw,relatime shared:21 - nfs4 srv:/export rw,vers=4.2
42 22 0:37 / /mnt/smb rw,relatime - cifs //nas/share rw
"""


def test_network_file_systems_are_named() -> None:
    fs = files.filesystem_type
    assert fs(Path("/home/lab/shared data/p.gumshoe"), MOUNTINFO) == "nfs4"
    assert fs(Path("/home/lab/local/p.gumshoe"), MOUNTINFO) == "ext4"
    assert fs(Path("/mnt/smb/x.gumshoe"), MOUNTINFO) == "cifs"
    warning = files.network_warning(Path("/home/lab/shared data/p.gumshoe"), MOUNTINFO)
    assert "network file system (nfs4)" in warning and "gumshoe backup" in warning
    assert files.network_warning(Path("/home/lab/local/p.gumshoe"), MOUNTINFO) is None
    assert files.filesystem_type(Path("/"), "garbage\nlines - \n") is None


def test_a_write_that_fills_the_file_reports_the_full_disk_not_the_rollback(
        tmp_path: Path) -> None:
    """SQLite rolls a transaction back by itself when the disk (here: the file's page
    limit) is full; the store's own ROLLBACK then has nothing to undo and must not
    replace the error that says why."""
    with Project.create(tmp_path / "p.gumshoe") as project:
        pages = project.conn.execute("PRAGMA page_count").fetchone()[0]
        project.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(sqlite3.OperationalError, match="disk is full"), \
                project.transaction() as conn:
            conn.execute("CREATE TABLE filler (x BLOB)")
            for _ in range(100):
                conn.execute("INSERT INTO filler VALUES (?)", (b"x" * 4000,))
        assert not project.conn.in_transaction
        project.conn.execute(f"PRAGMA max_page_count = {10 * pages}")
        assert project.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert project.count_samples() == 0  # and it still answers
