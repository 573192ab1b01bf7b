"""Leeds Sports Pose (extended): ``joints.mat`` holds ``joints``, 14 x 3 x N
(x, y, flag) in the LSP14 order, for ``images/im00001.jpg`` onwards.

In the published file the flag is 1 for a visible joint and 0 for one that is
not annotated, whose coordinates are meaningless (such as ``(0, -26)``): those
joints are stored as missing (NaN, visibility 0). Visible joints just outside
the frame (a head top at y = -1) are kept.

``joints.mat`` is read here, not by SciPy, whose C reader crashed the process
(SIGSEGV) on fuzzed files: a regular file under :data:`MAT_LIMIT`, every element
inside the file, a compressed one inflating to at most :data:`MAX_INFLATED` (a
300 KB zlib bomb inflates to 300 MB), ``joints`` a real numeric array of at most
that size. Anything wrong with the file is one :class:`FormatError`, never a
traceback or a crash.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import rel_key
from core.paths import MIB, ReadError, one_line, read_regular, shown
from core.project import LabelSchema
from core.schemas import LSP14

MAT = "joints.mat"
MAT_LIMIT = 256 * MIB  # the file
MAX_INFLATED = 64 * MIB  # one variable, decompressed (joints of 190 000 images)
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED = 1, 5, 6, 14, 15
_NUMERIC_CLASSES = set(range(6, 16))  # mxDOUBLE_CLASS .. mxUINT64_CLASS
# MATLAB data types of numeric data: MATLAB may store doubles in a smaller type
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
              12: "i8", 13: "u8"}


class LspReader:
    name = "lsp"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        source = Path(source)
        return source.parent if source.suffix.lower() == ".mat" else source

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        return source.name == MAT if source.is_file() else (source / MAT).is_file()

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: LSP has body joints (landmarks), not {task!r}")
        return LSP14

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        self.schema(source, task)
        root = self.root(source)
        joints = load_joints(root / MAT)
        for i, j in enumerate(joints):
            image = root / "images" / f"im{i + 1:05d}.jpg"
            key = rel_key(image, root)
            visible = (j[:, 2] == 1) & np.isfinite(j[:, :2]).all(axis=1)
            if not image.is_file():
                yield Skip(key, "image missing")
            elif not visible.any():
                yield Skip(key, "no visible joint")
            else:
                points = np.where(visible[:, None], j[:, :2], np.nan)
                yield RawItem(key, image, points, np.where(visible, 2, 0).astype(np.int8))


def load_joints(path: Path) -> np.ndarray:
    """(N, 14, 3) float64: x, y, flag. FormatError (one line naming the file) for
    anything that is not a readable, sane ``joints`` array."""
    name = shown(path)
    try:
        data = read_regular(path, MAT_LIMIT)
    except ReadError as exc:
        raise FormatError(f"{name}: {exc}") from None
    try:
        joints = read_mat_array(data, "joints")
        if joints.ndim != 3 or joints.shape[:2] != (14, 3):
            raise FormatError(f"'joints' is {' x '.join(map(str, joints.shape))}, "
                              "expected 14 x 3 x N")
        return joints.transpose(2, 0, 1)
    except FormatError as exc:
        raise FormatError(f"{name}: {exc}") from None
    except MemoryError:
        raise FormatError(f"{name}: out of memory reading it as a MATLAB file") from None
    except (struct.error, ValueError, OverflowError, IndexError) as exc:
        raise FormatError(f"{name}: corrupt MATLAB file ({type(exc).__name__}: "
                          f"{one_line(str(exc))[:200]})") from None


def read_mat_array(data: bytes, variable: str) -> np.ndarray:
    """The numeric array ``variable`` of a MATLAB 5 / 7 file as float64, read in pure
    Python and NumPy (SciPy's C reader crashes the process on some corrupt files):
    every element bounded by the file, compressed ones inflating to at most
    :data:`MAX_INFLATED`, the array's size checked before it is built."""
    if len(data) < 128:
        raise FormatError("not a MATLAB file (too short)")
    if data[126:128] not in (b"IM", b"MI"):
        raise FormatError("not a MATLAB 5 file (a version 4 file cannot hold joints, "
                          "which are 3-D)")
    e = "<" if data[126:128] == b"IM" else ">"
    if struct.unpack(e + "H", data[124:126])[0] == 0x0200:
        raise FormatError("a MATLAB v7.3 (HDF5) file; save it with -v7")
    want = variable.encode()
    found = None
    pos = 128
    while pos < len(data):
        if len(data) - pos < 8:
            raise FormatError(f"truncated element header at byte {pos}")
        kind, nbytes = struct.unpack(e + "II", data[pos:pos + 8])
        if kind >> 16:  # a small element (4 bytes of data in the tag)
            pos += 8
            continue
        end = pos + 8 + nbytes
        if end > len(data):
            raise FormatError(f"truncated: element at byte {pos} claims {nbytes} bytes, "
                              f"{len(data) - pos - 8} left")
        body = None
        if kind == _MI_COMPRESSED:
            inner = _inflate(data[pos + 8:end], pos)
            if len(inner) >= 8:
                ikind, inbytes = struct.unpack(e + "II", inner[:8])
                if ikind == _MI_MATRIX:
                    if 8 + inbytes > len(inner):
                        raise FormatError(f"truncated compressed variable at byte {pos}")
                    body = inner[8:8 + inbytes]
        elif kind == _MI_MATRIX:
            body = data[pos + 8:end]
        if body is not None:
            arr = _matrix(body, e, want)
            if arr is not None:
                found = arr
        pos = end + (0 if kind == _MI_COMPRESSED else (-nbytes) % 8)
    if found is None:
        raise FormatError(f"no {variable!r} array")
    return found


def _inflate(compressed: bytes, pos: int) -> bytes:
    d = zlib.decompressobj()
    try:
        inner = d.decompress(compressed, MAX_INFLATED + 1)
    except zlib.error as exc:
        raise FormatError(f"corrupt compressed data at byte {pos} ({exc})") from None
    if len(inner) > MAX_INFLATED or d.unconsumed_tail:
        raise FormatError(f"a compressed variable inflates beyond {MAX_INFLATED // MIB} MB "
                          "(too large; a zlib bomb?)")
    return inner


def _subelement(buf: bytes, pos: int, e: str) -> tuple[int, bytes, int]:
    """(type, payload, next position) of the data element at ``pos`` of ``buf``."""
    if len(buf) - pos < 8:
        raise FormatError("truncated variable")
    kind, nbytes = struct.unpack(e + "II", buf[pos:pos + 8])
    if kind >> 16:  # small element
        n = kind >> 16
        if n > 4:
            raise FormatError("corrupt variable (small element over 4 bytes)")
        return kind & 0xFFFF, buf[pos + 4:pos + 4 + n], pos + 8
    if pos + 8 + nbytes > len(buf):
        raise FormatError("truncated variable")
    return kind, buf[pos + 8:pos + 8 + nbytes], pos + 8 + nbytes + (-nbytes) % 8


def _matrix(body: bytes, e: str, want: bytes) -> np.ndarray | None:
    """The array of a miMATRIX element if it is named ``want``, else None."""
    if not body:
        return None  # an empty matrix
    kind, flags, pos = _subelement(body, 0, e)
    if kind != _MI_UINT32 or len(flags) < 4:
        raise FormatError("corrupt variable header (array flags)")
    word = struct.unpack(e + "I", flags[:4])[0]
    kind, dims_raw, pos = _subelement(body, pos, e)
    if kind != _MI_INT32 or not 8 <= len(dims_raw) <= 4 * 32 or len(dims_raw) % 4:
        raise FormatError("corrupt variable header (dimensions)")
    dims = struct.unpack(e + f"{len(dims_raw) // 4}i", dims_raw)
    if min(dims) < 0:
        raise FormatError(f"negative dimension in {dims}")
    kind, name, pos = _subelement(body, pos, e)
    if kind != _MI_INT8:
        raise FormatError("corrupt variable header (name)")
    if name.rstrip(b"\0") != want:
        return None
    label = f"'{want.decode()}'"
    if (word & 0xFF) not in _NUMERIC_CLASSES:
        raise FormatError(f"{label} is not a numeric array")
    if word & 0x0800:
        raise FormatError(f"{label} is complex")
    count = math.prod(dims)
    if count * 8 > MAX_INFLATED:
        raise FormatError(f"{label} is {' x '.join(map(str, dims))}: too large "
                          f"(over {MAX_INFLATED // MIB} MB)")
    kind, payload, _ = _subelement(body, pos, e)
    dtype = _MI_DTYPES.get(kind)
    if dtype is None:
        raise FormatError(f"{label} holds data of MATLAB type {kind}, not numbers")
    dt = np.dtype(e + dtype)
    if len(payload) != count * dt.itemsize:
        raise FormatError(f"{label} is {' x '.join(map(str, dims))} but holds "
                          f"{len(payload) // dt.itemsize} values")
    return np.frombuffer(payload, dt).astype(np.float64).reshape(dims, order="F")
