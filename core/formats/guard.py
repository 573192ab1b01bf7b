"""What every new reader checks before it trusts a file or a path it was given.

* :func:`read_capped` reads only regular files (not a FIFO, device or folder that
  would block or never end) and checks the size *before* reading, so a label file
  the size of a disk is refused instead of filling memory.
* :func:`inside` resolves a path written in a label file against the dataset root
  and refuses one that leaves it (``../../etc/passwd``, an absolute path, a
  symlink pointing out), so a crafted label file cannot make Gumshoe read, copy
  or export files from elsewhere on the machine.

Both raise ValueError with a one-line reason (no path: the caller names the file).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

MB = 1 << 20
LABEL_FILE_LIMIT = 256 * MB  # a label/annotation file (JSON, XML, CSV, YAML, txt)
SMALL_FILE_LIMIT = 1 * MB  # config files, one YOLO label file


def check_regular(path: Path, limit: int) -> int:
    """The size of ``path`` if it is a regular file of at most ``limit`` bytes."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValueError(f"cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size > limit:
        raise ValueError(f"too large ({st.st_size / MB:.1f} MB; the limit is {limit / MB:g} MB)")
    return st.st_size


def read_capped(path: Path, limit: int = LABEL_FILE_LIMIT) -> bytes:
    """The bytes of a regular file no larger than ``limit``."""
    check_regular(path, limit)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read ({exc.strerror})") from None
    if len(data) > limit:  # grew between stat and read
        raise ValueError(f"too large (over {limit / MB:g} MB)")
    return data


def read_text(path: Path, limit: int = LABEL_FILE_LIMIT) -> str:
    """UTF-8 text (a BOM is dropped) of a regular file no larger than ``limit``."""
    try:
        return read_capped(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def split_path(text: str) -> tuple[str, ...]:
    """The parts of a relative path as a label file writes it, with ``/`` or ``\\``
    (DeepLabCut on Windows writes ``labeled-data\\video\\img.png``)."""
    if "\x00" in text:
        raise ValueError("path holds a NUL byte")
    if PureWindowsPath(text).drive or text.startswith(("/", "\\")):
        raise ValueError(f"absolute path {text[:80]!r}")
    parts = PurePosixPath(text.replace("\\", "/")).parts
    return tuple(p for p in parts if p not in ("", "."))


def inside(root: Path, rel: str | os.PathLike[str]) -> Path:
    """``root / rel`` if it stays inside ``root`` once resolved (symlinks followed)."""
    parts = split_path(os.fspath(rel))
    if not parts:
        raise ValueError("empty path")
    root = Path(root).resolve()
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root):
        raise ValueError(f"path {os.fspath(rel)[:80]!r} leaves the dataset folder")
    return path
