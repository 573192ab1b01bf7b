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

Files are read only when they are regular files under a size cap
(:func:`core.paths.read_regular`), and a box is checked before it is used
(:func:`box_problem`, :func:`crop_for`): a box that gives no crop is an
:class:`ImageError` naming the file, never an arithmetic exception.

The on-disk cache of letterboxed images (:class:`ImageCache`) is in
:mod:`core.image_cache`; its names are importable from here too.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from collections.abc import Callable, Sequence
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

from core.paths import IMAGE_LIMIT, ReadError, one_line, read_regular, shown  # noqa: E402

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
    """An image that cannot be used; the one-line message names the file and the problem.
    ``kind``: ``missing`` (no such file), ``changed`` (its bytes differ from the ones
    imported) or ``unreadable`` (anything else)."""

    def __init__(self, message: str, kind: str = "unreadable") -> None:
        super().__init__(message)
        self.kind = kind


MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024


def check_image_size(size: int) -> int:
    """``size`` if it can be a cache and model input side: a multiple of 32 (the
    backbones halve the input five times) from 32 to 1024; else ValueError."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError(f"image size {size!r} is not a whole number of pixels")
    if size % 32 or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image size {size} must be a multiple of 32 from {MIN_IMAGE_SIZE} "
                         f"to {MAX_IMAGE_SIZE}")
    return int(size)


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
        raise ImageError(f"{shown(path)}: truncated or corrupt JPEG (no frame header or scan)")
    # Entropy-coded data cannot contain FF D9 (0xFF is stuffed as FF 00) and an EXIF
    # thumbnail's end marker lies before the first scan: no FF D9 after it = truncated.
    if data.rfind(b"\xff\xd9") < sos:
        raise ImageError(f"{shown(path)}: truncated JPEG (no end-of-image marker)")
    return size


def _png_header(data: bytes, path: Path) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ImageError(f"{shown(path)}: corrupt PNG (no IHDR chunk)")
    w, h = struct.unpack(">II", data[16:24])
    i = 8
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        i += 12 + length
        if kind == b"IEND":
            if i <= len(data):
                return w, h
            break
    raise ImageError(f"{shown(path)}: truncated PNG (no IEND chunk)")


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


_TIFF = (b"II*\0", b"MM\0*")


def looks_like_image(data: bytes) -> bool:
    """Whether ``data`` starts like a file of one of the image formats Gumshoe reads
    (JPEG, PNG, GIF, BMP, WebP, TIFF, PNM): the check before an export copies a file."""
    return (data[:3] == b"\xff\xd8\xff" or data[:8] == _PNG_MAGIC
            or data[:6] in (b"GIF87a", b"GIF89a") or data[:2] == b"BM"
            or (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[:4] in _TIFF
            or (len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"1234567"
                and data[2:3] in b" \t\r\n"))


def _check_size(w: int, h: int, path: Path) -> None:
    if w <= 0 or h <= 0:
        raise ImageError(f"{shown(path)}: image claims size {w}x{h}")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageError(
            f"{shown(path)}: image claims size {w}x{h}, over the limit "
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
        raise ImageError(f"{shown(p)}: empty file")
    header = _header_size(data, p)
    if header is not None:
        _check_size(header[1], header[2], p)
    applied = reduce if header is not None and header[0] == "jpeg" else 1
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS[applied])
    except MemoryError:
        raise ImageError(f"{shown(p)}: out of memory decoding the image") from None
    except cv2.error as exc:
        if "validateInputImageSize" in str(exc):
            raise ImageError(f"{shown(p)}: image dimensions over the limit ({MAX_SIDE} px a side, "
                             f"{MAX_PIXELS // 1_000_000} Mpixel)") from None
        raise ImageError(f"{shown(p)}: cannot decode ({str(exc).strip().splitlines()[-1]})") from None
    if img is None:
        raise ImageError(f"{shown(p)}: not an image or an unsupported format")
    if header is None:
        _check_size(img.shape[1], img.shape[0], p)
    return np.ascontiguousarray(img), applied


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an image file: a regular file of at most :data:`IMAGE_LIMIT` bytes
    (checked before reading: never a FIFO, a device, or more than memory holds)."""
    try:
        return read_regular(path, IMAGE_LIMIT)
    except ReadError as exc:
        raise ImageError(f"{shown(path)}: {exc}", "missing" if exc.missing else "unreadable") from None


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
        problem = box_problem(box)
        if problem:
            raise ValueError(problem)
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0) * (1 + 2 * BOX_MARGIN)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if not (side > 0 and math.isfinite(side)):
        raise ValueError(f"empty crop (image {width}x{height})")
    scale = size / side
    c = (size - 1) / 2
    lb = Letterbox(scale, c - scale * cx, c - scale * cy, size)
    if not all(math.isfinite(v) for v in (lb.scale, lb.dx, lb.dy)) or lb.scale <= 0:
        raise ValueError(f"box {_box_text(box)} gives no usable crop")
    return lb


MAX_COORD = 1e6  # no image is a million pixels wide: beyond, a coordinate is garbage
MIN_BOX_SIDE = 1.0  # pixels


def _box_text(box: Sequence[float] | None) -> str:
    return "none" if box is None else "(" + ", ".join(f"{float(v):g}" for v in box) + ")"


def box_problem(box: Sequence[float] | None) -> str | None:
    """Why a box (x0, y0, x1, y1) cannot give a crop, or None: every coordinate finite
    and within +-1e6, x1 > x0 and y1 > y0, the longer side at least a pixel."""
    if box is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return f"box {box!r} is not four numbers"
    vals = (x0, y0, x1, y1)
    if not all(math.isfinite(v) for v in vals):
        return f"box {_box_text(vals)} has a non-finite coordinate"
    if max(abs(v) for v in vals) > MAX_COORD:
        return f"box {_box_text(vals)} has a coordinate beyond any image"
    if not (x1 > x0 and y1 > y0):
        return f"box {_box_text(vals)} is empty or inverted (needs x1 > x0 and y1 > y0)"
    if max(x1 - x0, y1 - y0) < MIN_BOX_SIDE:
        return f"box {_box_text(vals)} is smaller than a pixel"
    return None


def box_outside(box: Sequence[float] | None, width: int, height: int) -> str | None:
    """Why a valid box does not fit an image of ``width`` x ``height``, or None."""
    if box is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= -0.5 or y1 <= -0.5 or x0 >= width - 0.5 or y0 >= height - 0.5:
        return f"box {_box_text(box)} lies outside the {width}x{height} image"
    return None


def crop_for(image: np.ndarray, width: int, height: int, box: Sequence[float] | None,
             size: int, path: str | os.PathLike[str], reduce: int = 1
             ) -> tuple[np.ndarray, Letterbox]:
    """The cache crop of a decoded image (``letterbox(image, letterbox_for(...))``) and
    its transform; ImageError naming ``path`` for a box that gives no crop."""
    try:
        problem = box_outside(box, width, height) if box_problem(box) is None else None
        if problem:
            raise ValueError(problem)
        lb = letterbox_for(width, height, box, size)
        return letterbox(image, lb, reduce), lb
    except (ValueError, ZeroDivisionError, OverflowError, cv2.error) as exc:
        raise ImageError(f"{shown(path)}: {one_line(str(exc))}") from None


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


# The cache lives in core.image_cache (its rows' reader in core.cache_rows, its problems
# record in core.image_problems); its
# names stay importable from here (loaded on first use: those modules import this one).
_CACHE_NAMES = {"CachedImages": "cache_rows", "DiskFullError": "cache_files",
                "ImageCache": "image_cache", "ImageProblem": "image_problems",
                "image_problems": "image_problems"}


def __getattr__(name: str) -> object:
    if name in _CACHE_NAMES:
        import importlib

        return getattr(importlib.import_module(f"core.{_CACHE_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
