"""The project file on disk: connections (read-write or read-only), the write lock
taken without starving anyone, network file systems, checkpoints and backups.

The write lock: SQLite's own busy handler sleeps up to 100 ms between tries, so a
waiting edit can miss every gap a bulk writer leaves between its chunks and wait
for the whole write. :func:`begin_immediate` polls every millisecond instead, and
bulk writers (:func:`yield_lock`) leave a gap of a few milliseconds between their
short transactions: an edit waits for at most one chunk. A :class:`Pacer` sizes
those chunks by the time each one held the lock (about :data:`HOLD_TARGET_S`),
not by a row count, so a cold cache or a slow disk makes chunks smaller instead
of making an annotator wait longer.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
LOCK_POLL_S = 0.001
BULK_GAP_S = 0.003  # what a bulk writer leaves between two chunks
HOLD_TARGET_S = 0.02  # how long one chunk of a bulk write should hold the write lock

# file systems where SQLite's WAL (shared memory, POSIX locks) is unsafe
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph",
    "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.sshfs", "sshfs",
    "davfs", "fuse.davfs2", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "fuse.juicefs",
})


def connect(path: Path, *, read_only: bool = False, immutable: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=True)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def begin_immediate(conn: sqlite3.Connection, timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """``BEGIN IMMEDIATE``, retried every millisecond while another connection writes."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError(
                        f"database is locked (another process kept writing for "
                        f"{timeout_s:.0f} s)") from None
                time.sleep(LOCK_POLL_S)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def yield_lock() -> None:
    """Between two chunks of a bulk write: let a waiting edit take the lock."""
    time.sleep(BULK_GAP_S)


class Pacer:
    """The size of a bulk writer's next chunk, steered so that each transaction
    holds the write lock about ``target_s``: after each chunk, :meth:`held` scales
    the size by target / elapsed (at most halving or doubling it at once)."""

    def __init__(self, size: int, *, target_s: float = HOLD_TARGET_S, least: int = 16,
                 most: int = 100_000) -> None:
        self.size = max(least, min(most, int(size)))
        self.target_s = target_s
        self.least = least
        self.most = most
        self.longest_s = 0.0  # the longest hold so far

    @contextlib.contextmanager
    def chunk(self, store: Any) -> Iterator[None]:
        """One chunk's write transaction on ``store`` (a project store:
        ``with pacer.chunk(self): ...``), timed from the moment it holds the write
        lock to its commit; then the writer checkpoints the write-ahead log and
        leaves the gap that lets a waiting edit in. The writer checkpoints its own
        pages here, outside the lock: left to SQLite's auto-checkpoint, the next
        commit to pass 1 000 log pages pays for it, and that can be an annotator's
        edit (tens of milliseconds)."""
        with store.transaction():
            t0 = time.perf_counter()  # after BEGIN: waiting for the lock is not holding it
            yield
        self.held(time.perf_counter() - t0)
        with contextlib.suppress(sqlite3.Error):
            store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        yield_lock()

    def held(self, seconds: float) -> None:
        self.longest_s = max(self.longest_s, seconds)
        factor = min(2.0, max(0.5, self.target_s / max(seconds, 1e-6)))
        self.size = max(self.least, min(self.most, int(self.size * factor)))

    def parts(self, items: Sequence[T]) -> Iterator[Sequence[T]]:
        """``items`` in consecutive slices of the current size."""
        i = 0
        while i < len(items):
            part = items[i:i + self.size]
            i += len(part)
            yield part


# --------------------------------------------------------------------------- file systems


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the file system holding ``path`` (Linux /proc/self/mountinfo; None
    where it cannot be told)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, best_len = None, -1
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount = _unescape(fields[4])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/") or mount == "/"
        if inside and len(mount) > best_len:
            best, best_len = right.split()[0], len(mount)
    return best


def network_warning(path: Path, mountinfo: str | None = None) -> str | None:
    fs = filesystem_type(path.parent if not path.exists() else path, mountinfo)
    if fs is None or fs.lower() not in NETWORK_FILESYSTEMS:
        return None
    return (f"{path}: on a network file system ({fs}); SQLite cannot lock a project there "
            "safely and two machines writing it can corrupt it. Work on a local copy "
            "(`gumshoe backup` makes one) and merge it back with `gumshoe merge`.")


# --------------------------------------------------------------------------- copies


def checkpoint(conn: sqlite3.Connection, wait_ms: int = 200) -> None:
    """Fold the WAL into the file (so a copy of the .gumshoe alone is complete) and
    truncate it; gives up after ``wait_ms`` if readers or a writer are busy."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def backup(conn: sqlite3.Connection, dest: Path, *, drop_lease: bool = False) -> None:
    """A consistent copy of the open database in one self-contained file (rollback
    journal mode, no -wal beside it), written under a temporary name and renamed;
    with ``drop_lease``, without the training lease row."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        out = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.backup(out)
            if drop_lease and out.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lease'"
            ).fetchone():
                out.execute("DELETE FROM lease")
            out.execute("PRAGMA journal_mode = DELETE")
            ok = out.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(f"the copy does not pass quick_check ({ok})")
        finally:
            out.close()
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        for extra in ("-journal", "-wal", "-shm"):
            Path(str(tmp) + extra).unlink(missing_ok=True)
