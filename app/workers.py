"""The one worker pattern of the app: a small QThread wrapper.

A :class:`Worker` runs a plain Python function ``fn(ctx, *args)`` in its own
thread. The function talks back only through ``ctx``:

* ``ctx.emit(value, force=False)`` sends a plain value (float, tuple, NumPy
  copy, frozen dataclass) to the GUI thread as the ``progress`` signal;
  throttled to ``max_rate`` per second unless ``force``;
* ``ctx.should_stop()`` is the cooperative stop flag (check it every batch);
* ``ctx.wait_if_paused()`` blocks while the GUI has paused the worker;
* ``ctx.project()`` opens the worker's own :class:`core.project.Project`
  connection (closed when the function returns).

The return value arrives as ``done``, an exception as ``failed`` (and in the
error sink). No Qt object is created in the worker; the wrapper itself is
created, started and joined on the GUI thread. ``stop_all`` stops and joins
every live worker (the main window calls it on close; tests check none is left).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThread, Signal

from app import errors

log = logging.getLogger(__name__)

_live: weakref.WeakSet[Worker] = weakref.WeakSet()
_keep: set[Worker] = set()  # keep running workers alive until they finish


class WorkerContext:
    """What the worker function sees: plain Python, safe in its thread."""

    def __init__(self, worker: Worker, project_path: Path | None, max_rate: float) -> None:
        self._worker = worker
        self._stop = worker._stop
        self._resume = worker._resume
        self._min_dt = 1.0 / max_rate if max_rate > 0 else 0.0
        self._last = 0.0
        self._project_path = project_path
        self._project: Any = None

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def wait_if_paused(self) -> bool:
        """Block while paused; returns False if asked to stop meanwhile."""
        while not self._resume.wait(0.05):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def emit(self, value: Any, force: bool = False) -> bool:
        """Send ``value`` to the GUI; dropped if within the throttle interval."""
        if not force:
            now = time.monotonic()
            if now - self._last < self._min_dt:
                return False
            self._last = now
        self._worker.progress.emit(value)
        return True

    @property
    def project_path(self) -> Path | None:
        return self._project_path

    def project(self) -> Any:
        """This thread's own project connection (opened on first use)."""
        if self._project is None:
            if self._project_path is None:
                raise RuntimeError("worker was started without a project path")
            from core.project import Project

            self._project = Project.open(self._project_path)
        return self._project

    def close(self) -> None:
        if self._project is not None:
            self._project.close()
            self._project = None


class Worker(QThread):
    progress = Signal(object)
    done = Signal(object)
    failed = Signal(str, str)  # message, traceback

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "worker",
                 project_path: str | Path | None = None, max_rate: float = 10.0,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self._fn = fn
        self._args = args
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._project_path = None if project_path is None else Path(project_path)
        self._max_rate = max_rate
        self.result: Any = None
        self.error: str | None = None
        self.report_errors = True
        _live.add(self)
        self.finished.connect(self._on_finished)

    # GUI-thread API --------------------------------------------------------
    def start(self, *a: Any) -> None:  # noqa: D401 - QThread.start
        _keep.add(self)
        super().start(*a)

    def request_stop(self) -> None:
        self._stop.set()
        self._resume.set()

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def is_paused(self) -> bool:
        return not self._resume.is_set()

    def stop_and_join(self, timeout_s: float = 30.0) -> bool:
        """Ask to stop and wait; True if the thread has ended."""
        self.request_stop()
        ok = self.wait(int(timeout_s * 1000)) if self.isRunning() else True
        if not ok:
            log.error("worker %s did not stop within %.0f s", self.objectName(), timeout_s)
        return ok

    # worker thread ---------------------------------------------------------
    def run(self) -> None:
        threading.current_thread().name = self.objectName()
        ctx = WorkerContext(self, self._project_path, self._max_rate)
        try:
            self.result = self._fn(ctx, *self._args)
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the sink
            tb = traceback.format_exc()
            self.error = f"{type(exc).__name__}: {exc}"
            self.failed.emit(self.error, tb)
            if self.report_errors:
                errors.report(f"{self.objectName()} failed: {self.error}", tb)
        else:
            self.done.emit(self.result)
        finally:
            ctx.close()

    def _on_finished(self) -> None:
        _keep.discard(self)


def live_workers() -> list[Worker]:
    # a worker whose C++ side is gone (deleteLater ran) has ended: skip it
    return [w for w in list(_live) if shiboken6.isValid(w) and w.isRunning()]


def stop_all(timeout_s: float = 30.0) -> bool:
    """Stop and join every running worker; True if all ended."""
    workers = live_workers()
    for w in workers:
        w.request_stop()
    return all(w.stop_and_join(timeout_s) for w in workers)
