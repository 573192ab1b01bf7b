"""The project file: opening it (read-write, or read-only for viewing and export),
upgrading old files, and the parts every other module of the store builds on.

Opening checks, before anything reads a row: the file is an SQLite database with
Gumshoe's application id; its schema version is one this code knows (a newer one
is refused, an older one upgraded after a backup); its tables, columns, indexes,
triggers and views are exactly the ones this version writes (anything else, e.g.
a trigger that rewrites edits or a view in place of a table, is refused in one
line). A file in a read-only folder, a read-only file or one locked by another
process opens read-only (``project.read_only`` and ``read_only_reason`` say so),
a file on a network file system opens with a warning (``project.warnings``).
Closing folds the WAL into the file, so the ``.gumshoe`` alone is complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from core.store import codec, files, migrations
from core.store.base import StoreBase
from core.store.lease import LeaseMixin
from core.store.queue import QueueMixin
from core.store.records import (
    Conflict,
    FutureProjectError,
    ImportSkip,
    LabelSchema,
    ProjectError,
    Source,
    now_iso,
)
from core.store.samples import SamplesMixin
from core.store.schema import APP_ID, PAGE_SIZE, SCHEMA_VERSION, differences
from core.store.scores import RunsMixin

log = logging.getLogger("gumshoe.store")

ASKED = "opened read-only"
OPEN_WAIT_MS = 2000  # how long opening waits for a lock before calling the file locked
SOURCE_COLS = "id, root, format, task, options, status, skipped, created_at, completed_at"


def _source(r: Any) -> Source:
    return Source(int(r[0]), str(r[1]), str(r[2]), str(r[3]),
                  codec.json_object(r[4], "source options"), str(r[5]), int(r[6]), str(r[7]), r[8])


class Project(SamplesMixin, RunsMixin, QueueMixin, LeaseMixin, StoreBase):
    """An open project file. Not thread-safe: open one per thread."""

    # ----------------------------------------------------------- open / create

    @classmethod
    def create(cls, path: str | os.PathLike[str], schema: LabelSchema | None = None) -> Project:
        p = Path(path)
        if p.exists():
            raise ProjectError(f"{p}: already exists")
        p.parent.mkdir(parents=True, exist_ok=True)
        proj = cls._open(p, read_only=False)
        if schema is not None:
            proj.set_schema(schema)
        return proj

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, read_only: bool = False) -> Project:
        """Open a project (read-only when asked, or when it cannot be written: see the
        module docstring)."""
        p = Path(path)
        if not p.exists():
            raise ProjectError(f"{p}: no such project file")
        if not p.is_file():
            raise ProjectError(f"{p}: not a file")
        return cls._open(p, read_only=read_only)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str]) -> Project:
        p = Path(path)
        return cls.open(p) if p.exists() else cls.create(p)

    @staticmethod
    def _why_read_only(path: Path) -> str | None:
        if path.exists() and not os.access(path, os.W_OK):
            return "the file is read-only"
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return "its folder is read-only"
        return None

    @classmethod
    def _open(cls, path: Path, read_only: bool) -> Project:
        reason = ASKED if read_only else cls._why_read_only(path)
        if reason is not None and not path.exists():
            raise ProjectError(f"{path}: cannot create a project here ({reason})")
        if reason is None:
            try:
                return cls._open_writable(path)
            except _Locked as exc:
                reason = str(exc)
        return cls._open_read_only(path, reason)

    @classmethod
    def _check_header(cls, conn: sqlite3.Connection, path: Path) -> int:
        """The file's schema version, after refusing what is not a project this reads."""
        conn.execute(f"PRAGMA busy_timeout = {OPEN_WAIT_MS}")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            has_tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ProjectError(f"{path}: locked by another process, which holds it "
                                   "exclusively; close it there first") from None
            raise ProjectError(f"{path}: not a Gumshoe project ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise ProjectError(f"{path}: not a Gumshoe project ({exc})") from None
        if has_tables and app_id != APP_ID:
            raise ProjectError(f"{path}: an SQLite file, but not a Gumshoe project")
        if version > SCHEMA_VERSION:
            raise FutureProjectError(
                f"{path}: written by a newer Gumshoe (project schema v{version}; this "
                f"version reads up to v{SCHEMA_VERSION}). Upgrade Gumshoe to open it.")
        if version < 0 or (has_tables and version == 0):
            raise ProjectError(f"{path}: not a Gumshoe project (unknown schema version {version})")
        conn.execute(f"PRAGMA busy_timeout = {files.BUSY_TIMEOUT_MS}")
        return int(version)

    @staticmethod
    def _check_structure(conn: sqlite3.Connection, path: Path, version: int) -> None:
        """Refuse a file whose tables, columns, indexes, triggers or views are not the
        ones Gumshoe writes at its version (checked before anything is written)."""
        try:
            diffs = differences(conn, version)
        except sqlite3.OperationalError as exc:  # e.g. a path index this SQLite cannot read
            raise ProjectError(f"{path}: cannot read its schema ({exc}); its path index needs "
                               f"SQLite 3.34 or newer with FTS5 (this Python has SQLite "
                               f"{sqlite3.sqlite_version})") from None
        if diffs:
            more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
            raise ProjectError(f"{path}: refused: its schema is not the one Gumshoe writes "
                               f"for v{version} ({diffs[0]}{more}); it may have been altered")

    @classmethod
    def _open_writable(cls, path: Path) -> Project:
        try:
            conn = files.connect(path)
        except sqlite3.Error as exc:
            raise ProjectError(f"{path}: cannot open ({exc})") from None
        proj = None
        try:
            version = cls._check_header(conn, path)
            if version > 0:
                cls._check_structure(conn, path, version)
            else:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            try:
                conn.execute(f"PRAGMA busy_timeout = {OPEN_WAIT_MS}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                _probe_write(conn)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise _Locked("locked by another process") from None
                if "readonly" in str(exc) or "unable to open" in str(exc):
                    raise _Locked(f"it cannot be written here: {exc}") from None
                raise
            finally:
                conn.execute(f"PRAGMA busy_timeout = {files.BUSY_TIMEOUT_MS}")
            if mode.lower() != "wal":  # pragma: no cover - e.g. a medium without shared memory
                conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA synchronous = NORMAL")
            proj = cls(path, conn)
            if version < SCHEMA_VERSION:
                try:
                    backup = migrations.migrate(conn, path, version)
                except ProjectError as exc:
                    if "locked" in str(exc) and version > 0:
                        raise _Locked("locked by another process (it needs an upgrade, which "
                                      "waits for that process)") from None
                    raise
                if backup is not None:
                    proj.warnings.append(f"{path}: upgraded from schema v{version} to "
                                         f"v{SCHEMA_VERSION}; the old file is kept in {backup}")
                conn.execute("PRAGMA journal_mode = WAL")
                cls._check_structure(conn, path, SCHEMA_VERSION)
            proj.schema  # noqa: B018 - decode (and so check) the label schema now
            proj._warn_network()
            return proj
        except BaseException:
            conn.close()
            raise

    @classmethod
    def _open_read_only(cls, path: Path, reason: str) -> Project:
        try:
            conn = files.connect(path, read_only=True)
        except sqlite3.Error as exc:
            raise ProjectError(f"{path}: cannot open ({exc})") from None
        try:
            conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc) or "readonly" in str(exc):
                # WAL mode, and no -shm file can be made here: read the file alone
                conn.close()
                conn = files.connect(path, read_only=True, immutable=True)
                wal = path.with_name(path.name + "-wal")
                if wal.exists() and wal.stat().st_size:
                    reason += f"; changes still in {wal.name} are not shown"
        try:
            version = cls._check_header(conn, path)
        except BaseException:
            conn.close()
            raise
        if version != SCHEMA_VERSION:
            conn.close()
            raise ProjectError(f"{path}: schema v{version} needs an upgrade to v{SCHEMA_VERSION}, "
                               f"which needs write access ({reason})")
        proj = cls(path, conn, read_only=True, read_only_reason=reason)
        try:
            cls._check_structure(conn, path, version)
            proj.schema  # noqa: B018 - decode (and so check) the label schema now
        except BaseException:
            conn.close()
            raise
        if reason != ASKED:
            proj.warnings.append(f"{path}: {reason}; open read-only: viewing and export only")
        proj._warn_network()
        return proj

    def _warn_network(self) -> None:
        msg = files.network_warning(self.path)
        if msg:
            self.warnings.append(msg)
            log.warning("%s", msg)

    def close(self) -> None:
        lease = getattr(self, "_lease", None)
        if lease is not None:
            with contextlib.suppress(sqlite3.Error, ProjectError):
                lease.release()
        try:
            if not self.read_only:
                files.checkpoint(self.conn)
            self.conn.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """A consistent copy of this project in one file (SQLite's online backup: others
        may keep working meanwhile), without the training lease: a trainer running
        here holds no lease on the copy."""
        dest = Path(dest)
        if dest.exists():
            raise ProjectError(f"{dest}: already exists")
        if dest.resolve() == self.path.resolve():
            raise ProjectError(f"{dest}: is the project itself")
        files.backup(self.conn, dest, drop_lease=True)
        return dest

    # ----------------------------------------------------------- sources

    def add_source(self, root: str | os.PathLike[str], fmt: str, task: str,
                   options: dict[str, Any] | None = None) -> int:
        """The id of the source (root, format, task), created if new."""
        root_s = str(Path(root).resolve())
        with self.transaction():
            row = self.conn.execute(
                "SELECT id FROM sources WHERE root = ? AND format = ? AND task = ?",
                (root_s, fmt, task)).fetchone()
            if row:
                return int(row[0])
            cur = self.conn.execute(
                "INSERT INTO sources(root, format, task, options, created_at) VALUES (?,?,?,?,?)",
                (root_s, fmt, task, json.dumps(options or {}), now_iso()))
            return int(cur.lastrowid)

    def sources(self) -> list[Source]:
        return [self._decode(f"source {r[0]}", _source, r)
                for r in self.conn.execute(f"SELECT {SOURCE_COLS} FROM sources ORDER BY id")]

    def complete_source(self, source_id: int) -> None:
        with self.transaction():
            n = self.conn.execute("SELECT count(*) FROM import_errors WHERE source_id = ?",
                                  (source_id,)).fetchone()[0]
            self.conn.execute(
                "UPDATE sources SET status = 'complete', skipped = ?, completed_at = ? WHERE id = ?",
                (n, now_iso(), source_id))

    def record_skips(self, source_id: int, skips: Any) -> None:
        """Remember skipped items (path, reason) of an import; repeats are ignored."""
        rows = [(source_id, p, r, now_iso()) for p, r in skips]
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO import_errors(source_id, path, reason, created_at) "
                "VALUES (?, ?, ?, ?)", rows)

    def import_errors(self, source_id: int | None = None) -> list[ImportSkip]:
        sql = "SELECT id, source_id, path, reason, created_at FROM import_errors"
        rows = (self.conn.execute(sql + " ORDER BY id") if source_id is None else
                self.conn.execute(sql + " WHERE source_id = ? ORDER BY id", (source_id,)))
        return [ImportSkip(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def skipped_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM import_errors").fetchone()[0])

    # ----------------------------------------------------------- merge conflicts

    def merge(self, other: str | os.PathLike[str]) -> Any:
        """Bring an offline copy's label versions and review events in (see
        :mod:`core.store.merge`); returns its :class:`~core.store.merge.MergeResult`."""
        from core.store.merge import merge

        return merge(self, Path(other))

    def conflicts(self, sample_id: int | None = None, open_only: bool = True) -> list[Conflict]:
        sql = ("SELECT id, sample_id, kind, ours, theirs, kept, merged_from, created_at, "
               "resolved_at FROM conflicts WHERE 1")
        args: list[Any] = []
        if sample_id is not None:
            sql += " AND sample_id = ?"
            args.append(sample_id)
        if open_only:
            sql += " AND resolved_at IS NULL"
        return [Conflict(int(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5]),
                         str(r[6]), str(r[7]), r[8])
                for r in self.conn.execute(sql + " ORDER BY id", args)]

    def resolve_conflicts(self, sample_id: int) -> None:
        """Mark a sample's merge conflicts as looked at (an annotator's new edit or
        review decision on the sample does this too)."""
        with self.transaction():
            self._resolve(sample_id)

    # ----------------------------------------------------------- summary

    def info(self) -> dict[str, Any]:
        schema = self.schema
        task = None if schema is None else schema.task
        age_min = age_max = None
        if task == "age":
            age_min, age_max = self.conn.execute(
                "SELECT min(l.age), max(l.age) FROM samples s JOIN labels l ON l.id = s.label_id"
            ).fetchone()
        return {
            "path": str(self.path),
            "schema_version": SCHEMA_VERSION,
            "samples": self.count_samples(),
            "task": task,
            "schema": None if schema is None else schema.name,
            "keypoints": 0 if schema is None else schema.n_keypoints,
            "age_min": age_min,
            "age_max": age_max,
            "skipped": self.skipped_count(),
            "sources": len(self.sources()),
            "splits": dict(self.conn.execute(
                "SELECT split, count(*) FROM samples GROUP BY split").fetchall()),
            "review": self.review_counts(),
            "runs": int(self.conn.execute("SELECT count(*) FROM runs").fetchone()[0]),
            "labels": int(self.conn.execute("SELECT count(*) FROM labels").fetchone()[0]),
            "conflicts": int(self.conn.execute(
                "SELECT count(*) FROM conflicts WHERE resolved_at IS NULL").fetchone()[0]),
            "read_only": self.read_only_reason if self.read_only else None,
            "warnings": list(self.warnings),
        }


class _Locked(Exception):
    """Writing the file is impossible (another process holds it, or the medium or the
    file refuses writes): the message is the reason shown with the read-only project."""


def _probe_write(conn: sqlite3.Connection) -> None:
    """Raise if this connection cannot write (a read-only file or folder, which SQLite
    opens read-only without a word); a busy writer elsewhere is no failure."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {OPEN_WAIT_MS}")
    conn.execute("ROLLBACK")
