"""Original images for the editor: decoded off the GUI thread, kept in a small
LRU cache, with the neighbours of the current sample prefetched so switching
samples does not wait for a decode.

The loader worker returns plain NumPy arrays (RGB uint8, downscaled so the long
side is at most ``MAX_SIDE``) with their scale; the QImage/QPixmap is made on
the GUI thread.
"""

from __future__ import annotations

import queue
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QPixmap

from app.workers import Worker, WorkerContext
from core.images import ImageError, decode_image, read_file

MAX_SIDE = 2048
CACHE_SIZE = 24


def decode(path: str) -> tuple[np.ndarray | None, float, str]:
    """(RGB array or None, scale from original pixels to array pixels, error). The
    engine's decoder: same EXIF handling, size guards and truncation checks as import."""
    try:
        img, _ = decode_image(read_file(path), path)
    except ImageError as exc:
        return None, 1.0, str(exc)
    h, w = img.shape[:2]
    scale = 1.0
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img), scale, ""


def _load_loop(ctx: WorkerContext, requests: queue.Queue) -> None:
    while not ctx.should_stop():
        try:
            path = requests.get(timeout=0.05)
        except queue.Empty:
            continue
        arr, scale, err = decode(path)
        ctx.emit((path, arr, scale, err), force=True)


def to_pixmap(arr: np.ndarray) -> QPixmap:
    h, w = arr.shape[:2]
    qimg = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimg)  # copies the pixels


class ImageCache(QObject):
    """path -> (QPixmap, scale); ``loaded(path)`` when a requested image arrives."""

    loaded = Signal(str)
    failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: OrderedDict[str, tuple[QPixmap, float]] = OrderedDict()
        # a closed cache starts no loader until start(): replies queued at close time
        # must not bring a thread back to life
        self._pending: set[str] = set()
        self._requests: queue.Queue = queue.Queue()
        self._worker: Worker | None = None
        self.closed = False

    def start(self) -> None:
        """Start the loader (again after close: the editor calls it for a new project)."""
        self.closed = False
        if self._worker is None:
            self._worker = Worker(_load_loop, self._requests, name="image-loader")
            self._worker.progress.connect(self._on_loaded)
            self._worker.start()

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        if self._worker is not None:
            self._worker.progress.disconnect(self._on_loaded)
            self._worker.stop_and_join()
            self._worker.deleteLater()
            self._worker = None

    def get(self, path: str | Path) -> tuple[QPixmap, float] | None:
        key = str(path)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        self.request(key)
        return None

    def request(self, path: str | Path) -> None:
        key = str(path)
        if key in self._cache or key in self._pending or self.closed:
            return
        if self._worker is None:
            self.start()
        self._pending.add(key)
        self._requests.put(key)

    def _on_loaded(self, msg: tuple) -> None:
        path, arr, scale, err = msg
        self._pending.discard(path)
        if arr is None:
            self.failed.emit(path, err)
            return
        self._cache[path] = (to_pixmap(arr), scale)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self.loaded.emit(path)
