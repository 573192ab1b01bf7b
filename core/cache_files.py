"""The image cache folder's shared file primitives: its writers' lock, atomic JSON
files, growing and writing the data file, and the one-line error of a full disk (used by :mod:`core.image_cache` and
:mod:`core.image_problems`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from core.paths import disk_full, shown, write_atomic

LOCK_NAME = "cache.lock"


class DiskFullError(OSError):
    """No space left for the cache: one line, ``disk full: PATH``."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOSPC, "disk full", str(path))

    def __str__(self) -> str:
        return f"disk full: {shown(self.filename)}"


@contextlib.contextmanager
def cache_lock(folder: Path) -> Iterator[None]:
    """The cache folder's writers' lock (blocking; released if the process dies)."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def write_json(path: Path, doc: object) -> None:
    """Atomically replace ``path`` (:func:`core.paths.write_atomic`); a full disk is
    one line naming the file."""
    try:
        write_atomic(path, json.dumps(doc, separators=(",", ":")).encode())
    except OSError as exc:
        if disk_full(exc):
            raise DiskFullError(path) from None
        raise


def allocate(fd: int, offset: int, length: int, path: Path) -> None:
    """Reserve disk blocks for ``[offset, offset + length)`` (grows the file, never
    shrinks it). Where the file system cannot preallocate, the file is extended and
    ``pwrite`` reports a full disk instead."""
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, offset, length)
            return
    except OSError as exc:
        if disk_full(exc):
            raise DiskFullError(path) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", -1)):
            raise
    if os.fstat(fd).st_size < offset + length:
        os.ftruncate(fd, offset + length)


def pwrite_all(fd: int, data: memoryview, offset: int, path: Path) -> None:
    """Write all of ``data`` at ``offset`` (a full disk is :class:`DiskFullError`)."""
    try:
        while data:
            n = os.pwrite(fd, data, offset)
            data, offset = data[n:], offset + n
    except OSError as exc:
        if disk_full(exc):
            raise DiskFullError(path) from None
        raise


def inode(path: Path) -> int:
    """The file's inode number, -1 when it does not exist."""
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1
