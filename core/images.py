"""Image decoding, letterbox geometry and the on-disk image cache.

Decoding (:func:`load_image`) reads a file once, hashes its bytes and decodes
them by content (the extension may lie) with OpenCV into RGB uint8 ``H x W x 3``:
EXIF orientation applied (OpenCV 5 does so for ``IMREAD_COLOR*``), greyscale
expanded to three channels, alpha dropped, 16-bit reduced to 8. Broken files
raise :class:`ImageError`: empty, not an image, truncated JPEG/PNG (OpenCV would
silently fill the missing part with grey), or a header claiming absurd
dimensions (checked before decoding, so a decompression bomb never allocates).

Geometry: the model input is a square ``S x S`` crop, never derived from the
labels: the sample's box plus a margin of :data:`BOX_MARGIN` (25%) of the box's
longer side on every side, or the whole image, centred, scaled to fit and
padded with black (never stretched). Coordinates are pixel-centre coordinates
(pixel ``(i, j)`` has its centre at ``x = i, y = j``, as in OpenCV and the
landmark formats): ``cache = scale * image + (dx, dy)``.

The cache (:class:`ImageCache`) holds every sample's letterboxed image in one
memory-mapped uint8 file ``images-S.u8`` of shape ``(capacity, S, S, 3)`` in the
project's cache folder, with a JSON index ``images-S.json`` beside it
(sample id -> slot, content hash, source file size and mtime, letterbox).
Slots are append-only: a changed image gets a new slot, so the data an index
on disk points at is never overwritten. The index is replaced atomically after
the data is flushed; a crash leaves the old index or the new one, and a missing
or corrupt cache is rebuilt. One writer at a time; an instance is not
thread-safe (open one per thread, like :class:`core.project.Project`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

MAX_SIDE = 30_000
MAX_PIXELS = 200_000_000
# OpenCV's own size check, for the formats whose header is not parsed here (TIFF, PNM,
# ...): it reads these once, so they hold if this module is imported before cv2 is.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_WIDTH", str(MAX_SIDE))
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_HEIGHT", str(MAX_SIDE))
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")  # decode failures become ImageError instead

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from core.project import Sample  # noqa: E402

BOX_MARGIN = 0.25  # of the box's longer side, on every side
PROGRESS_INTERVAL_S = 0.1
FLUSH_INTERVAL_S = 10.0

# OpenCV 5: IMREAD_COLOR_RGB decodes straight to RGB; the reduced modes carry the
# BGR bit, which must be swapped for the RGB one. All of them apply EXIF orientation.
_RGB = cv2.IMREAD_COLOR_RGB
_FLAGS = {
    1: _RGB,
    2: (cv2.IMREAD_REDUCED_COLOR_2 & ~cv2.IMREAD_COLOR_BGR) | _RGB,
    4: (cv2.IMREAD_REDUCED_COLOR_4 & ~cv2.IMREAD_COLOR_BGR) | _RGB,
    8: (cv2.IMREAD_REDUCED_COLOR_8 & ~cv2.IMREAD_COLOR_BGR) | _RGB,
}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]


class ImageError(Exception):
    """An image that cannot be used; the one-line message names the file and the problem."""


def content_hash(data: bytes) -> str:
    """Hex BLAKE2b (160-bit) of a file's bytes."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


# --------------------------------------------------------------------------- decoding


def _jpeg_header(data: bytes, path: Path) -> tuple[int, int]:
    """Width and height from the frame header; raises if the file is truncated."""
    i, n, size, sos = 2, len(data), None, -1
    while i + 4 <= n:
        if data[i] != 0xFF:  # stray bytes between segments: libjpeg skips them too
            i = data.find(b"\xff", i)
            if i < 0:
                break
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            i += 2
            continue
        if marker in _SOF and i + 9 <= n:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            size = (w, h)
        if marker == 0xDA:
            sos = i
            break
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    if size is None or sos < 0:
        raise ImageError(f"{path}: truncated or corrupt JPEG (no frame header or scan)")
    # Entropy-coded data cannot contain FF D9 (0xFF is stuffed as FF 00) and an EXIF
    # thumbnail's end marker lies before the first scan: no FF D9 after it = truncated.
    if data.rfind(b"\xff\xd9") < sos:
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")
    return size


def _png_header(data: bytes, path: Path) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ImageError(f"{path}: corrupt PNG (no IHDR chunk)")
    w, h = struct.unpack(">II", data[16:24])
    i = 8
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        i += 12 + length
        if kind == b"IEND":
            if i <= len(data):
                return w, h
            break
    raise ImageError(f"{path}: truncated PNG (no IEND chunk)")


def _header_size(data: bytes, path: Path) -> tuple[str, int, int] | None:
    """(format, width, height) read from the header, or None for formats not parsed here."""
    if data[:2] == b"\xff\xd8":
        return ("jpeg", *_jpeg_header(data, path))
    if data[:8] == _PNG_MAGIC and len(data) >= 24:
        return ("png", *_png_header(data, path))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return ("gif", *struct.unpack("<HH", data[6:10]))
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return "bmp", abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return "webp", w & 0x3FFF, h & 0x3FFF
        if kind == b"VP8L":
            bits = struct.unpack("<I", data[21:25])[0]
            return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            w = 1 + int.from_bytes(data[24:27], "little")
            return "webp", w, 1 + int.from_bytes(data[27:30], "little")
    return None


def _check_size(w: int, h: int, path: Path) -> None:
    if w <= 0 or h <= 0:
        raise ImageError(f"{path}: image claims size {w}x{h}")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageError(
            f"{path}: image claims size {w}x{h}, over the limit "
            f"({MAX_SIDE} px a side, {MAX_PIXELS // 1_000_000} Mpixel)")


def decode_image(data: bytes, path: str | os.PathLike[str],
                 reduce: int = 1) -> tuple[np.ndarray, int]:
    """Decode file bytes to RGB uint8 (H, W, 3); ``path`` only names the file in errors.

    ``reduce`` (1, 2, 4 or 8) asks for a JPEG at 1/reduce of its size, decoded
    straight from the DCT (far faster for big files; pixel ``i`` then covers
    original pixels ``reduce*i .. reduce*i + reduce - 1``). Returns the image and
    the reduction applied: other formats are decoded at full size (1)."""
    p = Path(path)
    if not data:
        raise ImageError(f"{p}: empty file")
    header = _header_size(data, p)
    if header is not None:
        _check_size(header[1], header[2], p)
    applied = reduce if header is not None and header[0] == "jpeg" else 1
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS[applied])
    except cv2.error as exc:
        if "validateInputImageSize" in str(exc):
            raise ImageError(f"{p}: image dimensions over the limit ({MAX_SIDE} px a side, "
                             f"{MAX_PIXELS // 1_000_000} Mpixel)") from None
        raise ImageError(f"{p}: cannot decode ({str(exc).strip().splitlines()[-1]})") from None
    if img is None:
        raise ImageError(f"{p}: not an image or an unsupported format")
    if header is None:
        _check_size(img.shape[1], img.shape[0], p)
    return np.ascontiguousarray(img), applied


def read_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """Read ``path`` once: (RGB uint8 H x W x 3, content hash of the file bytes)."""
    data = read_file(path)
    return decode_image(data, path)[0], content_hash(data)


# --------------------------------------------------------------------------- letterbox


@dataclass(frozen=True)
class Letterbox:
    """``cache = scale * image + (dx, dy)`` in pixel-centre coordinates; ``size`` = S."""

    scale: float
    dx: float
    dy: float
    size: int

    def to_cache(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return p * self.scale + np.array([self.dx, self.dy])

    def to_image(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return (p - np.array([self.dx, self.dy])) / self.scale

    def reduction(self) -> int:
        """The largest JPEG reduction (1, 2, 4, 8) that still leaves at least one
        decoded pixel per cache pixel."""
        return max((f for f in (1, 2, 4, 8) if f * self.scale <= 1.0), default=1)


def letterbox_for(width: int, height: int,
                  box: Sequence[float] | None, size: int) -> Letterbox:
    """The square crop of an image (whole image, or ``box`` = x0, y0, x1, y1 plus a
    :data:`BOX_MARGIN` margin) scaled to ``size`` x ``size``, centred."""
    if box is None:
        side = max(width, height)
        cx, cy = (width - 1) / 2, (height - 1) / 2
    else:
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0) * (1 + 2 * BOX_MARGIN)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if not side > 0:
        raise ValueError(f"empty crop (image {width}x{height}, box {box})")
    scale = size / side
    c = (size - 1) / 2
    return Letterbox(scale, c - scale * cx, c - scale * cy, size)


def letterbox(image: np.ndarray, lb: Letterbox, reduce: int = 1) -> np.ndarray:
    """The (S, S, 3) uint8 crop of ``image``; ``reduce`` > 1 when ``image`` was decoded
    at 1/reduce size (see :func:`decode_image`). Downscaling averages (INTER_AREA)."""
    scale = lb.scale * reduce
    dx = lb.dx + lb.scale * (reduce - 1) / 2
    dy = lb.dy + lb.scale * (reduce - 1) / 2
    s = lb.size
    m = np.array([[scale, 0.0, dx], [0.0, scale, dy]])
    src = image
    if scale < 1.0:
        # Only the part that lands in the square, shrunk by area averaging first;
        # warpAffine then does the small remaining scale and the sub-pixel shift.
        h, w = image.shape[:2]
        x0 = max(0, math.floor((-0.5 - dx) / scale) - 1)
        y0 = max(0, math.floor((-0.5 - dy) / scale) - 1)
        x1 = min(w, math.ceil((s - 0.5 - dx) / scale) + 2)
        y1 = min(h, math.ceil((s - 0.5 - dy) / scale) + 2)
        if x1 <= x0 or y1 <= y0:
            return np.zeros((s, s, 3), np.uint8)
        cw, ch = x1 - x0, y1 - y0
        nw, nh = max(1, round(cw * scale)), max(1, round(ch * scale))
        src = cv2.resize(image[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
        sx, sy = nw / cw, nh / ch
        m = np.array([[scale / sx, 0.0, scale * (0.5 / sx - 0.5 + x0) + dx],
                      [0.0, scale / sy, scale * (0.5 / sy - 0.5 + y0) + dy]])
    return cv2.warpAffine(src, m, (s, s), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


# --------------------------------------------------------------------------- cache


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
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _lb_key(lb: Letterbox) -> tuple[float, float, float]:
    return (lb.scale, lb.dx, lb.dy)


class ImageCache:
    """Letterboxed ``size`` x ``size`` images of a project's samples, memory-mapped."""

    INDEX_FORMAT = 1

    def __init__(self, cache_dir: str | os.PathLike[str], size: int) -> None:
        self.dir = Path(cache_dir)
        self.size = int(size)
        self.data_path = self.dir / f"images-{self.size}.u8"
        self.index_path = self.dir / f"images-{self.size}.json"
        self._slot_bytes = self.size * self.size * 3
        self._entries: dict[int, _Entry] = {}
        self._used = 0
        self._mm: np.memmap | None = None
        self._dirty = False
        self.dir.mkdir(parents=True, exist_ok=True)
        self._load()

    # ----------------------------------------------------------- files

    def _capacity(self) -> int:
        return 0 if self._mm is None else self._mm.shape[0]

    def _load(self) -> None:
        file_slots = (self.data_path.stat().st_size // self._slot_bytes
                      if self.data_path.exists() else 0)
        try:
            d = json.loads(self.index_path.read_text())
            if d["format"] != self.INDEX_FORMAT or d["size"] != self.size:
                raise ValueError("another format")
            entries = {int(k): _Entry(int(v[0]), str(v[1]), int(v[2]), int(v[3]),
                                      (float(v[4]), float(v[5]), float(v[6])))
                       for k, v in d["entries"].items()}
            used = int(d["slots"])
            if used > file_slots or any(not 0 <= e.slot < used for e in entries.values()):
                raise ValueError("index points past the data file")
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            entries, used = {}, 0  # missing or corrupt: rebuild from scratch
            if file_slots:
                # into a new file: a trainer may still map the old one's rows (an open
                # map keeps the unlinked file), and must not see them overwritten
                self.data_path.unlink()
                file_slots = 0
        self._entries, self._used = entries, used
        if file_slots:
            self._mm = np.memmap(self.data_path, np.uint8, "r+",
                                 shape=(file_slots, self.size, self.size, 3))

    def _reserve(self, n: int) -> None:
        cap = self._capacity()
        if n <= cap:
            return
        new_cap = max(n, cap + cap // 2 + 64)
        if self._mm is not None:
            self._mm.flush()
            self._mm = None
        with open(self.data_path, "ab") as f:
            f.truncate(new_cap * self._slot_bytes)
        self._mm = np.memmap(self.data_path, np.uint8, "r+",
                             shape=(new_cap, self.size, self.size, 3))

    def flush(self) -> None:
        """Write the data, then atomically replace the index."""
        if not self._dirty:
            return
        if self._mm is not None:
            self._mm.flush()
        d = {"format": self.INDEX_FORMAT, "size": self.size, "slots": self._used,
             "entries": {str(k): [e.slot, e.hash, e.file_size, e.mtime_ns, *e.lb]
                         for k, e in self._entries.items()}}
        tmp = self.index_path.with_name(self.index_path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(d, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)
        self._dirty = False

    # ----------------------------------------------------------- entries

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._entries

    def content_hash(self, sample_id: int) -> str | None:
        e = self._entries.get(sample_id)
        return None if e is None else e.hash

    def transform(self, sample: Sample) -> Letterbox:
        """Image -> cache coordinates of ``sample``."""
        return letterbox_for(sample.width, sample.height, sample.box, self.size)

    def _store(self, sample_id: int, content_hash: str, crop: np.ndarray, lb: Letterbox,
               stat: tuple[int, int]) -> None:
        slot = self._used  # append-only: never overwrite what the saved index points at
        self._reserve(slot + 1)
        assert self._mm is not None
        self._mm[slot] = crop
        self._used += 1
        self._entries[sample_id] = _Entry(slot, content_hash, stat[0], stat[1], _lb_key(lb))
        self._dirty = True

    def put(self, sample_id: int, content_hash: str, crop: np.ndarray, lb: Letterbox,
            path: str | os.PathLike[str] | None = None) -> None:
        """Store a sample's letterboxed (S, S, 3) crop, ``letterbox(image, lb)``, made by
        the importer right after decoding (so import decodes each image once).
        ``path``: the source file, whose size and mtime let :meth:`ensure` skip it later
        without reading it (without it, ensure re-reads and hashes it once)."""
        if crop.shape != (self.size, self.size, 3) or crop.dtype != np.uint8:
            raise ValueError(f"{self.data_path}: crop of shape {crop.shape} {crop.dtype}, "
                             f"expected ({self.size}, {self.size}, 3) uint8")
        stat = _stat(Path(path)) if path is not None else (-1, -1)
        self._store(sample_id, content_hash, crop, lb, stat)

    def _fresh(self, sample: Sample, lb: Letterbox) -> bool:
        e = self._entries.get(sample.id)
        return (e is not None and e.lb == _lb_key(lb) and e.hash == sample.content_hash
                and e.file_size >= 0 and (e.file_size, e.mtime_ns) == _stat(sample.image_path))

    @staticmethod
    def _work(sample: Sample, lb: Letterbox,
              e: _Entry | None) -> tuple[str, tuple[int, int], np.ndarray | None]:
        """Runs in a pool thread: (hash, stat, crop or None when the cached one still holds)."""
        path = sample.image_path
        stat = _stat(path)
        data = read_file(path)
        h = content_hash(data)
        if e is not None and e.hash == h and e.lb == _lb_key(lb):
            return h, stat, None
        image, f = decode_image(data, path, lb.reduction())
        return h, stat, letterbox(image, lb, f)

    def ensure(self, samples: Iterable[Sample], progress: ProgressFn | None = None,
               should_stop: StopFn | None = None, workers: int = 2) -> dict[int, str]:
        """Decode the samples that are missing or stale (source file size/mtime changed
        and its content hash too, or a new box). Returns {sample id: error} for
        images that could not be used. ``progress(done, total)`` at most ~10 times a
        second; ``should_stop()`` is checked after every image."""
        samples = list(samples)
        total = len(samples)
        todo = [(s, lb) for s in samples if not self._fresh(s, lb := self.transform(s))]
        done = total - len(todo)
        errors: dict[int, str] = {}
        last_report = last_flush = time.monotonic()
        if progress is not None:
            progress(done, total)
        workers = max(1, workers)
        pending = iter(todo)
        with ThreadPoolExecutor(workers) as pool:
            # a bounded window of submitted work, so finished crops never pile up in memory
            window: deque[tuple[Sample, Letterbox, Future]] = deque()

            def submit(n: int) -> None:
                for s, lb in itertools.islice(pending, n):
                    window.append((s, lb, pool.submit(self._work, s, lb, self._entries.get(s.id))))

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
                    errors[s.id] = str(exc)
                    if self._entries.pop(s.id, None) is not None:
                        self._dirty = True
                else:
                    if crop is None:
                        self._entries[s.id] = _Entry(self._entries[s.id].slot, h, *stat,
                                                     _lb_key(lb))
                        self._dirty = True
                    else:
                        self._store(s.id, h, crop, lb, stat)
                done += 1
                now = time.monotonic()
                if progress is not None and (now - last_report >= PROGRESS_INTERVAL_S
                                             or done == total):
                    progress(done, total)
                    last_report = now
                if now - last_flush >= FLUSH_INTERVAL_S:
                    self.flush()
                    last_flush = now
        self.flush()
        return errors

    def reader(self, sample_ids: Sequence[int]) -> CachedImages:
        """A read-only view of the cached images of ``sample_ids``: row i is sample
        ``sample_ids[i]``. Rows are read from the memory map when indexed, so a
        training set costs the page cache, not a copy in this process."""
        self.flush()
        try:
            slots = np.array([self._entries[int(i)].slot for i in sample_ids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"{self.data_path}: sample {exc.args[0]} is not cached") from None
        return CachedImages(self.data_path, self.size, slots, self._capacity())

    def batch(self, sample_ids: Sequence[int]) -> np.ndarray:
        """(B, S, S, 3) uint8 copy of the cached images, in the given order."""
        try:
            slots = [self._entries[int(i)].slot for i in sample_ids]
        except KeyError as exc:
            raise KeyError(f"{self.data_path}: sample {exc.args[0]} is not cached") from None
        if not slots:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        assert self._mm is not None
        return np.asarray(self._mm[slots])


class CachedImages:
    """Rows of an image cache's data file, read through a read-only memory map:
    ``images[index]`` is a (len(index), S, S, 3) uint8 array (a copy), ``len`` the
    number of rows. The file only ever grows, so a map of its older length stays
    valid while an import adds images."""

    def __init__(self, data_path: Path, size: int, slots: np.ndarray, capacity: int) -> None:
        self.path = data_path
        self.size = size
        self.slots = slots
        self._mm = (np.memmap(data_path, np.uint8, "r", shape=(capacity, size, size, 3))
                    if capacity and len(slots) else None)

    def __len__(self) -> int:
        return len(self.slots)

    def __reduce__(self) -> tuple[type[CachedImages], tuple[Path, int, np.ndarray, int]]:
        # another process (a data-loader worker) maps the file itself: never a pickled
        # copy of the rows
        capacity = 0 if self._mm is None else int(self._mm.shape[0])
        return (CachedImages, (self.path, self.size, self.slots, capacity))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.slots), self.size, self.size, 3)

    @property
    def nbytes(self) -> int:
        return len(self.slots) * self.size * self.size * 3

    def __getitem__(self, index: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        slots = self.slots[index]
        if self._mm is None or len(slots) == 0:
            return np.zeros((len(slots), self.size, self.size, 3), np.uint8)
        # sorted reads walk the file forwards; the rows come back in the asked order
        order = np.argsort(slots, kind="stable")
        out = np.empty((len(slots), self.size, self.size, 3), np.uint8)
        out[order] = self._mm[slots[order]]
        return out
