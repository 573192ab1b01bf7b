"""The on-disk image cache: every sample's letterboxed ``S x S`` image, shared by
imports, trainers and the GUI of one project, in several processes and threads.

Files in the project's cache folder:

- ``images-S.u8``: rows of ``S*S*3`` uint8 pixels followed by a 32-byte trailer
  (the sample id, the BLAKE2b digest of the source file the row was made from, a
  magic number). The row carries whose image it is, so an index entry pointing at
  another sample's row, or at a row never written, is detected and rebuilt.
- ``images-S.json``: the index (sample id -> row, content hash, source file size
  and mtime, letterbox), replaced atomically.
- ``cache.lock``: the writers' lock (``flock``). Under it a writer re-reads the
  index if another one changed it, appends its rows after the last indexed row
  (growing the file with ``posix_fallocate``, so a full disk is an ``OSError``
  and never a SIGBUS on a mapped page), writes them with ``pwrite``, syncs them,
  then replaces the index. Rows are append-only and the file never shrinks: what
  an index on disk points at is never overwritten, so a trainer's read-only map
  stays valid while imports add images. A corrupt or missing index is rebuilt
  into a new data file (the old one stays alive for whoever maps it).
- ``image-problems.json``: the samples whose image was missing, unreadable or
  changed since import when the cache last checked them (:mod:`core.image_problems`).

Several :class:`ImageCache` objects (one per thread, or per process) may write the
same cache at once; one object is safe to share between threads too.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.cache_files import DiskFullError, allocate, cache_lock, inode, pwrite_all, write_json
from core.cache_rows import MAGIC, CachedImages, digest_bytes, row_dtype, rows_hold
from core.image_problems import ImageProblem, record_problems
from core.images import (
    MAX_IMAGE_SIZE,
    ImageError,
    Letterbox,
    ProgressFn,
    StopFn,
    content_hash,
    decode_image,
    letterbox,
    letterbox_for,
    read_file,
)
from core.paths import MIB, disk_full, shown
from core.project import Sample, now_iso

PROGRESS_INTERVAL_S = 0.1
COMMIT_INTERVAL_S = 2.0  # ensure() commits its new rows at least this often
COMMIT_BYTES = 64 * MIB  # ... and whenever this many are pending


class CacheMismatchError(KeyError):
    """An index entry whose row holds another sample's image (only possible if the
    cache was written by something that ignores the lock)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class _Entry:
    slot: int
    hash: str
    file_size: int  # -1: unknown (verify by hash)
    mtime_ns: int
    lb: tuple[float, float, float]  # scale, dx, dy it was made with


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _lb_key(lb: Letterbox) -> tuple[float, float, float]:
    return (lb.scale, lb.dx, lb.dy)


class ImageCache:
    """Letterboxed ``size`` x ``size`` images of a project's samples (see the module
    docstring for the file layout and the guarantees under several writers)."""

    INDEX_FORMAT = 2

    def __init__(self, cache_dir: str | os.PathLike[str], size: int) -> None:
        if not 1 <= int(size) <= MAX_IMAGE_SIZE:
            raise ValueError(f"image cache size {size} outside 1-{MAX_IMAGE_SIZE}")
        self.dir = Path(cache_dir)
        self.size = int(size)
        self.data_path = self.dir / f"images-{self.size}.u8"
        self.index_path = self.dir / f"images-{self.size}.json"
        self.dtype = row_dtype(self.size)
        self._row = self.dtype.itemsize
        self._entries: dict[int, _Entry] = {}
        self._used = 0
        self._index_key: tuple[int, int, int] | None = None
        self._fd: int | None = None
        self._fd_ino = -1
        self._pending: list[tuple[int, str, np.ndarray, tuple[float, float, float],
                                  tuple[int, int]]] = []
        self._touched: dict[int, _Entry] = {}  # same row, new file size/mtime
        self._dropped: set[int] = set()
        self._tlock = threading.RLock()
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._sync()

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Commit what is pending and close the data file."""
        self.flush()
        with self._tlock:
            self.__del__()

    # ----------------------------------------------------------- files

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._tlock, cache_lock(self.dir):
            yield

    def _read_index(self) -> tuple[dict[int, _Entry], int]:
        """Entries and used rows of the index on disk; ValueError if it is missing,
        corrupt, of another format or points past the data file."""
        try:
            d = json.loads(self.index_path.read_bytes())
            if d["format"] != self.INDEX_FORMAT or d["size"] != self.size:
                raise ValueError("another format")
            entries = {int(k): _Entry(int(v[0]), str(v[1]), int(v[2]), int(v[3]),
                                      (float(v[4]), float(v[5]), float(v[6])))
                       for k, v in d["entries"].items()}
            used = int(d["slots"])
            for e in entries.values():
                digest_bytes(e.hash)
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
                RecursionError) as exc:
            raise ValueError(str(exc)) from None
        rows = self.data_path.stat().st_size // self._row if self.data_path.exists() else 0
        if used > rows or any(not 0 <= e.slot < used for e in entries.values()):
            raise ValueError("index points past the data file")
        return entries, used

    def _sync(self) -> None:
        """With the lock held: bring this object in line with the files on disk (another
        writer may have added rows, or rebuilt the cache into a new data file)."""
        try:
            st = os.stat(self.index_path)
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        data_ino = inode(self.data_path)
        if key is not None and key == self._index_key and self._fd is not None \
                and data_ino == self._fd_ino:
            return
        try:
            if key is None:
                raise ValueError("no index")
            entries, used = self._read_index()
        except ValueError:
            # missing or corrupt: rebuild from scratch into a new data file, since a
            # trainer may still map the old one's rows and must not see them overwritten
            entries, used = {}, 0
            if data_ino >= 0:
                self.data_path.unlink()
                data_ino = -1
            self._entries, self._used = entries, used
            self._open_data()
            self._write_index()
            return
        self._entries, self._used = entries, used
        if data_ino != self._fd_ino or self._fd is None:
            self._open_data()
        self._index_key = key

    def _open_data(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                           0o644)
        self._fd_ino = os.fstat(self._fd).st_ino

    def _write_index(self) -> None:
        d = {"format": self.INDEX_FORMAT, "size": self.size, "slots": self._used,
             "entries": {str(k): [e.slot, e.hash, e.file_size, e.mtime_ns, *e.lb]
                         for k, e in self._entries.items()}}
        write_json(self.index_path, d)
        st = os.stat(self.index_path)
        self._index_key = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _append_rows(self) -> None:
        """With the lock held and in sync: write the pending rows after the last indexed
        one (never over a row the index points at) and sync them."""
        assert self._fd is not None
        n = len(self._pending)
        start = self._used
        need = (start + n) * self._row
        size = os.fstat(self._fd).st_size
        if need > size:
            extra = min(size // 4, 256 * MIB) // self._row * self._row  # amortised growth
            allocate(self._fd, size, need + extra - size, self.data_path)
        buf = np.zeros(n, self.dtype)
        for i, (sid, h, crop, _lb, _st) in enumerate(self._pending):
            buf[i]["image"] = crop
            buf[i]["sample"] = sid
            buf[i]["digest"] = np.frombuffer(digest_bytes(h), np.uint8)
            buf[i]["magic"] = np.frombuffer(MAGIC, np.uint8)
        pwrite_all(self._fd, memoryview(buf).cast("B"), start * self._row, self.data_path)
        try:
            os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)
        except OSError as exc:
            if disk_full(exc):
                raise DiskFullError(self.data_path) from None
            raise
        for i, (sid, h, _crop, lb, st) in enumerate(self._pending):
            self._entries[sid] = _Entry(start + i, h, st[0], st[1], lb)
        self._used = start + n

    def flush(self) -> None:
        """Commit: under the lock, append the pending rows and replace the index.
        Raises :class:`DiskFullError` (an OSError) when the disk is full; nothing
        already indexed is touched then, and the pending rows are dropped."""
        with self._tlock:
            if not (self._pending or self._touched or self._dropped):
                return
            try:
                with self._locked():
                    self._sync()
                    if self._pending:
                        self._append_rows()
                    for sid, e in self._touched.items():
                        cur = self._entries.get(sid)
                        if cur is not None and (cur.hash, cur.lb) == (e.hash, e.lb):
                            self._entries[sid] = _Entry(cur.slot, e.hash, e.file_size,
                                                        e.mtime_ns, e.lb)
                    for sid in self._dropped:
                        self._entries.pop(sid, None)
                    self._write_index()
            finally:
                self._pending.clear()
                self._touched.clear()
                self._dropped.clear()

    # ----------------------------------------------------------- entries

    def _ids(self) -> set[int]:
        """Samples cached or queued to be (committed or not by :meth:`flush`)."""
        with self._tlock:
            return (set(self._entries) | {p[0] for p in self._pending}) - self._dropped

    def __len__(self) -> int:
        return len(self._ids())

    def __contains__(self, sample_id: object) -> bool:
        with self._tlock:
            if sample_id in self._dropped:
                return False
            return sample_id in self._entries or any(p[0] == sample_id for p in self._pending)

    def content_hash(self, sample_id: int) -> str | None:
        e = self._entries.get(sample_id)
        return None if e is None else e.hash

    def transform(self, sample: Sample) -> Letterbox:
        """Image -> cache coordinates of ``sample``."""
        return letterbox_for(sample.width, sample.height, sample.box, self.size)

    def _queue(self, sample_id: int, hash_: str, crop: np.ndarray, lb: Letterbox,
               stat: tuple[int, int]) -> None:
        with self._tlock:
            self._pending.append((int(sample_id), hash_, crop, _lb_key(lb), stat))
            self._dropped.discard(int(sample_id))
            if len(self._pending) * self._row >= COMMIT_BYTES:
                self.flush()

    def put(self, sample_id: int, content_hash: str, crop: np.ndarray, lb: Letterbox,
            path: str | os.PathLike[str] | None = None) -> None:
        """Queue a sample's letterboxed (S, S, 3) crop, ``letterbox(image, lb)``, made
        by the importer right after decoding (so import decodes each image once);
        :meth:`flush` commits it. ``path``: the source file, whose size and mtime let
        :meth:`ensure` skip it later without reading it."""
        if crop.shape != (self.size, self.size, 3) or crop.dtype != np.uint8:
            raise ValueError(f"{self.data_path}: crop of shape {crop.shape} {crop.dtype}, "
                             f"expected ({self.size}, {self.size}, 3) uint8")
        digest_bytes(content_hash)
        stat = _stat(Path(path)) if path is not None else (-1, -1)
        self._queue(sample_id, content_hash, crop, lb, stat)

    def _rows_hold(self, items: Sequence[tuple[int, _Entry]]) -> np.ndarray:
        """Per (sample id, entry): does the row the entry points at carry that sample's
        id and content digest? (Lock held.)"""
        rows = os.fstat(self._fd).st_size // self._row if self._fd is not None else 0
        return rows_hold(self.data_path, self.size, rows,
                         np.array([e.slot for _, e in items], np.int64),
                         np.array([sid for sid, _ in items], np.int64),
                         [e.hash for _, e in items])

    def _fresh_ids(self, samples: Sequence[Sample],
                   lbs: Sequence[Letterbox]) -> tuple[set[int], set[int]]:
        """(samples whose cached row is current: same box, same content hash as imported
        when known, same source size and mtime, a row that carries them; samples whose
        entry points at a row that does not carry them)."""
        candidates = []
        for s, lb in zip(samples, lbs, strict=True):
            e = self._entries.get(s.id)
            if (e is not None and e.lb == _lb_key(lb) and e.file_size >= 0
                    and (not s.content_hash or e.hash == s.content_hash)
                    and (e.file_size, e.mtime_ns) == _stat(s.image_path)):
                candidates.append((s.id, e))
        with self._locked():
            self._sync()
            candidates = [(sid, self._entries[sid]) for sid, e in candidates
                          if self._entries.get(sid) == e]
            ok = self._rows_hold(candidates)
        fresh = {sid for (sid, _), good in zip(candidates, ok, strict=True) if good}
        return fresh, {sid for sid, _ in candidates} - fresh

    @staticmethod
    def _work(sample: Sample, lb: Letterbox,
              e: _Entry | None) -> tuple[str, tuple[int, int], np.ndarray | None]:
        """Runs in a pool thread: (hash, stat, crop or None when the cached one still
        holds). ImageError with kind ``missing``, ``changed`` or ``unreadable``."""
        path = sample.image_path
        stat = _stat(path)
        data = read_file(path)
        h = content_hash(data)
        if sample.content_hash and h != sample.content_hash:
            decode_image(data, path, 8)  # an unreadable file says so first
            raise ImageError(f"{shown(path)}: changed since import (its content hash "
                             "differs from the imported file's)", "changed")
        if e is not None and e.hash == h and e.lb == _lb_key(lb):
            return h, stat, None
        image, f = decode_image(data, path, lb.reduction())
        return h, stat, letterbox(image, lb, f)

    def ensure(self, samples: Iterable[Sample], progress: ProgressFn | None = None,
               should_stop: StopFn | None = None, workers: int = 2) -> dict[int, str]:
        """Decode the samples that are missing or stale (source file size/mtime changed
        and its content hash too, a new box, or a row that does not carry the sample).
        Returns {sample id: one-line error} for the images that cannot be used: missing,
        unreadable, or changed since import (content hash differs from the sample's);
        those are also recorded for :func:`image_problems`. ``progress(done, total)``
        at most ~10 times a second; ``should_stop()`` is checked after every image."""
        samples = list(samples)
        total = len(samples)
        lbs = [self.transform(s) for s in samples]
        fresh, bad_rows = self._fresh_ids(samples, lbs)
        todo = [(s, lb) for s, lb in zip(samples, lbs, strict=True) if s.id not in fresh]
        done = total - len(todo)
        checked = set(fresh)
        problems: dict[int, ImageProblem] = {}
        last_report = last_commit = time.monotonic()
        if progress is not None:
            progress(done, total)
        workers = max(1, workers)
        pending = iter(todo)
        try:
            with ThreadPoolExecutor(workers) as pool:
                # a bounded window of submitted work, so finished crops never pile up
                window: deque[tuple[Sample, Letterbox, Future]] = deque()

                def submit(n: int) -> None:
                    for s, lb in itertools.islice(pending, n):
                        e = None if s.id in bad_rows else self._entries.get(s.id)
                        window.append((s, lb, pool.submit(self._work, s, lb, e)))

                submit(4 * workers)
                while window:
                    if should_stop is not None and should_stop():
                        for _, _, f in window:
                            f.cancel()
                        break
                    s, lb, fut = window.popleft()
                    submit(1)
                    try:
                        h, stat, crop = fut.result()
                    except ImageError as exc:
                        problems[s.id] = ImageProblem(exc.kind, str(exc), now_iso())
                        with self._tlock:
                            self._dropped.add(s.id)
                    else:
                        e = self._entries.get(s.id)
                        if crop is None and e is None:  # dropped meanwhile by another writer
                            h, stat, crop = self._work(s, lb, None)
                        if crop is None:
                            with self._tlock:
                                self._touched[s.id] = _Entry(e.slot, h, *stat, _lb_key(lb))
                        else:
                            self._queue(s.id, h, crop, lb, stat)
                    checked.add(s.id)
                    done += 1
                    now = time.monotonic()
                    if progress is not None and (now - last_report >= PROGRESS_INTERVAL_S
                                                 or done == total):
                        progress(done, total)
                        last_report = now
                    if now - last_commit >= COMMIT_INTERVAL_S:
                        self.flush()
                        last_commit = now
        finally:
            self.flush()
            record_problems(self.dir, checked, problems)
        return {sid: p.message for sid, p in problems.items()}

    def _slots(self, sample_ids: Sequence[int]) -> list[tuple[int, _Entry]]:
        try:
            return [(int(i), self._entries[int(i)]) for i in sample_ids]
        except KeyError as exc:
            raise KeyError(f"{self.data_path}: sample {exc.args[0]} is not cached") from None

    def reader(self, sample_ids: Sequence[int]) -> CachedImages:
        """A read-only view of the cached images of ``sample_ids``: row i is sample
        ``sample_ids[i]``. Rows are read from the memory map when indexed, so a
        training set costs the page cache, not a copy in this process. Every row is
        checked to carry its sample (:class:`CacheMismatchError` otherwise)."""
        self.flush()
        with self._locked():
            self._sync()
            items = self._slots(sample_ids)
            ok = self._rows_hold(items)
            if not ok.all():
                sid = items[int(np.flatnonzero(~ok)[0])][0]
                raise CacheMismatchError(
                    f"{self.data_path}: the cached row of sample {sid} does not hold its "
                    "image; run again to rebuild it")
            slots = np.array([e.slot for _, e in items], dtype=np.int64)
            rows = os.fstat(self._fd).st_size // self._row if self._fd is not None else 0
            return CachedImages(self.data_path, self.size, slots, rows)

    def batch(self, sample_ids: Sequence[int]) -> np.ndarray:
        """(B, S, S, 3) uint8 copy of the cached images, in the given order."""
        if not len(sample_ids):
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        view = self.reader(sample_ids)
        return view[np.arange(len(sample_ids))]
