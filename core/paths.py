"""Safe access to the files a dataset names, and paths shown in one-line reports.

Everything a reader or the importer opens on a dataset's behalf goes through here:

- :func:`resolve_inside` keeps a path inside its source root: the path is joined
  to the root and resolved (``..`` collapsed, symlinks followed), and refused if
  it then lies outside the root, or if it was absolute, unless the caller passes
  ``allow_outside=True`` (``gumshoe import --allow-outside-root``).
- :func:`read_regular` reads only regular files (never a FIFO, a device or a
  socket, whatever a symlink points at) and only up to a size cap checked before
  reading, so a ``.pts`` named FIFO cannot hang an import and a link to
  ``/dev/zero`` cannot eat the memory.
- :func:`shown` writes a path for a report line: as it is when that is safe,
  else in double quotes with C escapes (like git), so a file name holding a
  newline cannot fake another ``skipped ...`` line and one that is not valid
  UTF-8 still prints. :func:`one_line` does the same for free text.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
# Size caps, checked before reading. An image over IMAGE_LIMIT is refused whatever its
# dimensions; a label file for one sample (.pts) is small; an index file (CSV, COCO
# JSON, dlib XML) lists a whole dataset (COCO's person_keypoints_train2017.json is 238 MB).
IMAGE_LIMIT = 256 * MIB
LABEL_FILE_LIMIT = 4 * MIB
INDEX_FILE_LIMIT = 1024 * MIB

ALLOW_OUTSIDE_HINT = "--allow-outside-root"


class UnsafePathError(ValueError):
    """A path that leaves its source root or is absolute (one-line reason, no root)."""


class ReadError(Exception):
    """A file that cannot be read safely: the message is one line without the path.
    ``missing`` is True when there is no such file."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing


def resolve_inside(root: str | os.PathLike[str], path: str | os.PathLike[str], *,
                   allow_outside: bool = False) -> Path:
    """``root / path`` resolved (symlinks followed). Raises :class:`UnsafePathError`
    when the result lies outside ``root`` (also resolved), through ``..``, a symlink
    or an absolute path, unless ``allow_outside``."""
    p = Path(path)
    try:
        root_r = Path(root).resolve()
        full = (root_r / p).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise UnsafePathError(f"{shown(p)}: cannot resolve ({exc})") from None
    if allow_outside or full.is_relative_to(root_r):
        return full
    if p.is_absolute():
        raise UnsafePathError(f"absolute path {shown(p)} is outside the source folder "
                              f"(allowed only with {ALLOW_OUTSIDE_HINT})")
    via = "a symlink" if Path(os.path.normpath(root_r / p)).is_relative_to(root_r) else "'..'"
    raise UnsafePathError(f"{shown(p)} leads outside the source folder through {via} "
                          f"(allowed only with {ALLOW_OUTSIDE_HINT})")


def is_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    try:
        resolve_inside(root, path)
    except UnsafePathError:
        return False
    return True


def is_file(path: str | os.PathLike[str]) -> bool:
    """``Path(path).is_file()`` that never raises (a name too long, a NUL byte, a
    permission problem): False."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def check_regular(path: str | os.PathLike[str], limit: int) -> os.stat_result:
    """The stat of ``path`` (symlinks followed) if it is a regular file of at most
    ``limit`` bytes, else :class:`ReadError`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ReadError("no such file", missing=True) from None
    except OSError as exc:
        raise ReadError(f"cannot read ({exc.strerror or exc})") from None
    _check_stat(st, limit)
    return st


def _check_stat(st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a plain file")
        raise ReadError(f"not a regular file ({kind})")
    if st.st_size > limit:
        raise ReadError(f"file too large ({_size(st.st_size)}; the limit is {_size(limit)})")


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Checked before opening (a device is never opened) and again on the open file
    (the name may have been swapped in between); opened non-blocking, so even a FIFO
    that appears between the two checks cannot hang; at most ``limit`` bytes read,
    so a file that grows while being read is refused too."""
    check_regular(path, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ReadError("no such file", missing=True) from None
    except OSError as exc:
        raise ReadError(f"cannot read ({exc.strerror or exc})") from None
    try:
        _check_stat(os.fstat(fd), limit)
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(8 * MIB, limit + 1 - total))
            except OSError as exc:
                raise ReadError(f"cannot read ({exc.strerror or exc})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ReadError(f"file too large (over {_size(limit)}, the limit)")
        return b"".join(chunks)
    except MemoryError:
        raise ReadError("out of memory reading the file") from None
    finally:
        os.close(fd)


def _size(n: int) -> str:
    for unit, k in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= k:
            return f"{n / k:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


# --------------------------------------------------------------------------- display

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", '"': '\\"', "\0": "\\0"}


def _escaped(text: str) -> tuple[str, bool]:
    """(text with C escapes, whether anything needed escaping)."""
    out, changed = [], False
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
            changed = True
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
            changed = True
        elif 0xD800 <= code <= 0xDFFF or not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
            changed = True
        else:
            out.append(ch)
    return "".join(out), changed


def shown(path: str | os.PathLike[str]) -> str:
    """A path for a one-line report: unchanged when plain, else ``"..."`` with C escapes
    (newlines, tabs, quotes, backslashes, control characters, bytes that are not UTF-8).
    Also quoted when it holds ``": "`` or starts or ends with a space, so the
    ``PATH: reason`` split stays unambiguous."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    body, changed = _escaped(text)
    if changed or ": " in text or text != text.strip() or not text:
        return f'"{body}"'
    return body


def one_line(text: str) -> str:
    """Free text (a reason, an error message) on one line: control characters and
    bytes that are not UTF-8 escaped, quotes and backslashes left alone."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch in "\n\r\t\0":
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or (not ch.isprintable() and ch != " "):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def storable(text: str) -> str:
    """``text`` as valid UTF-8 for SQLite and JSON: bytes of a file name that were not
    UTF-8 (Python's surrogate escapes) become ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def disk_full(exc: BaseException) -> bool:
    """True for 'no space left' (ENOSPC) and 'quota exceeded' (EDQUOT)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1))


def write_atomic(path: Path, data: bytes | memoryview) -> None:
    """Replace ``path`` with ``data`` atomically: written to a temporary file beside
    it, flushed and synced, then renamed over it. If anything fails (a full disk)
    the temporary file is removed and the error raised; ``path`` is untouched."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
