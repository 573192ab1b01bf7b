"""The training lease: one trainer per project (so one per run) at a time.

A trainer (the CLI, the GUI's worker, a benchmark) takes the lease before any
work and holds it until it ends; the row names its pid, host, owner, run and a
heartbeat. A second trainer is refused with a message naming the holder. A holder
is dead, and its lease is taken over, when its process is gone on this host (pid
and process start time checked), or when a holder on another host has not
beaten for :data:`STALE_S` seconds. A live holder beats at most every
:data:`HEARTBEAT_S` seconds (from the training loop's stop checks and between
score-write chunks); its token makes sure it releases only its own lease.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.store.base import StoreBase
from core.store.records import (
    LEASE_OWNERS,
    LeaseHeldError,
    LeaseInfo,
    LeaseLostError,
    host_name,
    now_iso,
)

HEARTBEAT_S = 5.0
STALE_S = 60.0

_held_here: set[str] = set()  # tokens of the leases this process holds
_held_lock = threading.Lock()


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a pid that
    was reused from the process that took the lease; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, under another user
        return True
    return True


def _row_alive(r: Sequence[Any]) -> bool:
    """r: (run_id, owner, pid, host, process_start, token, since, heartbeat, heartbeat_unix)."""
    pid, host, start, token, beat = int(r[2]), r[3], r[4], r[5], float(r[8])
    if host == host_name():
        if pid == os.getpid():
            with _held_lock:
                return token in _held_here
        if not _pid_alive(pid):
            return False
        return start is None or process_start(pid) in (None, start)
    return time.time() - beat < STALE_S


def _info(r: Sequence[Any]) -> LeaseInfo:
    return LeaseInfo(None if r[0] is None else int(r[0]), str(r[1]), int(r[2]), str(r[3]),
                     str(r[6]), str(r[7]))


_COLS = "run_id, owner, pid, host, process_start, token, since, heartbeat, heartbeat_unix"


class Lease:
    """A held lease; a context manager (released on exit)."""

    def __init__(self, project: LeaseMixin, token: str, info: LeaseInfo) -> None:
        self.project = project
        self.token = token
        self.info = info
        self._last = time.monotonic()
        self.released = False

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def set_run(self, run_id: int) -> None:
        """Name the run this lease trains (a new run gets its id after the lease)."""
        with self.project.transaction():
            self._check()
            self.project.conn.execute("UPDATE lease SET run_id = ? WHERE token = ?",
                                      (run_id, self.token))
        self.info = replace(self.info, run_id=run_id)

    def _check(self) -> None:
        row = self.project.conn.execute(f"SELECT {_COLS} FROM lease WHERE id = 1").fetchone()
        if row is None or row[5] != self.token:
            holder = "nobody" if row is None else _info(row).describe()
            raise LeaseLostError(f"{self.project.path}: this trainer's lease was taken over "
                                 f"(now held by {holder}); stop training")

    def heartbeat(self, force: bool = False) -> None:
        """Record that this trainer is alive (at most every HEARTBEAT_S unless forced).
        Raises :class:`LeaseLostError` when another trainer took the lease over."""
        if self.released:
            return
        now = time.monotonic()
        if not force and now - self._last < HEARTBEAT_S:
            return
        self._last = now
        with self.project.transaction():
            self._check()
            self.project.conn.execute(
                "UPDATE lease SET heartbeat = ?, heartbeat_unix = ? WHERE token = ?",
                (now_iso(), time.time(), self.token))

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with _held_lock:
            _held_here.discard(self.token)
        if getattr(self.project, "_lease", None) is self:
            self.project._lease = None
        if not self.project.read_only:
            with self.project.transaction():
                self.project.conn.execute("DELETE FROM lease WHERE token = ?", (self.token,))


class LeaseMixin(StoreBase):
    _lease: Lease | None = None

    def lease_holder(self) -> LeaseInfo | None:
        """The live trainer holding the project, or None (a dead holder reads as none)."""
        row = self.conn.execute(f"SELECT {_COLS} FROM lease WHERE id = 1").fetchone()
        if row is None or not _row_alive(row):
            return None
        return _info(row)

    def acquire_lease(self, run_id: int | None, owner: str) -> Lease:
        """Take the project's training lease for ``run_id`` (None: a run about to be
        created; name it with :meth:`Lease.set_run`). Raises :class:`LeaseHeldError`
        naming the live holder; a dead holder's lease is taken over."""
        if owner not in LEASE_OWNERS:
            raise ValueError(f"unknown lease owner {owner!r} (expected {', '.join(LEASE_OWNERS)})")
        token = uuid.uuid4().hex
        t, pid, host = now_iso(), os.getpid(), host_name()
        with self.transaction():
            row = self.conn.execute(f"SELECT {_COLS} FROM lease WHERE id = 1").fetchone()
            if row is not None and _row_alive(row):
                holder = _info(row)
                raise LeaseHeldError(f"{self.path}: another trainer is running ({holder.describe()})"
                                     "; wait for it to end or stop it there", holder)
            self.conn.execute(
                f"INSERT OR REPLACE INTO lease(id, {_COLS}) VALUES (1,?,?,?,?,?,?,?,?,?)",
                (run_id, owner, pid, host, process_start(pid), token, t, t, time.time()))
        with _held_lock:
            _held_here.add(token)
        lease = Lease(self, token, LeaseInfo(run_id, owner, pid, host, t, t))
        self._lease = lease
        return lease
