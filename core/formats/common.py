"""Helpers shared by the readers and writers: file walking, keys, image lookup by
stem, number parsing and formatting."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

# More landmarks than any schema has (dense face meshes have 468): a larger count read
# from a file is garbage, and must not size an allocation.
MAX_KEYPOINTS = 10_000

# In order of preference when several images share a stem.
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def walk(root: Path, suffixes: Sequence[str]) -> Iterator[Path]:
    """Files under ``root`` (recursively, sorted, hidden folders left out) whose suffix,
    lower-cased, is one of ``suffixes``."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if os.path.splitext(f)[1].lower() in suffixes:
                yield Path(folder) / f


def rel_key(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (``..`` where it lies outside)."""
    return Path(os.path.relpath(path, root)).as_posix()


class ImageFinder:
    """Finds the image that goes with a label file by stem, ignoring case (FG-NET pairs
    ``001a02.pts`` with ``001A02.JPG``). An exact-case stem wins, then IMAGE_EXTS order."""

    def __init__(self) -> None:
        self._dirs: dict[Path, dict[str, list[Path]]] = {}

    def find(self, folder: Path, stem: str) -> Path | None:
        index = self._dirs.get(folder)
        if index is None:
            index = {}
            for p in sorted(folder.iterdir()) if folder.is_dir() else ():
                if is_image(p) and p.is_file():
                    index.setdefault(p.stem.lower(), []).append(p)
            self._dirs[folder] = index
        found = index.get(stem.lower(), [])
        if not found:
            return None
        return min(found, key=lambda p: (p.stem != stem, IMAGE_EXTS.index(p.suffix.lower())))


def number(text: str, what: str) -> float:
    """A finite float, else ValueError naming ``what``."""
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{what}: not a number: {text.strip()[:40]!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{what}: not a finite number: {text.strip()[:40]!r}")
    return v


def visibility_of(points: np.ndarray) -> np.ndarray:
    """2 where a point is present, 0 where it is missing."""
    return np.where(np.isfinite(points).all(axis=1), 2, 0).astype(np.int8)


# OWASP's rule for CSV injection: a cell a spreadsheet would evaluate starts with one
# of these; it is written with a leading apostrophe, which spreadsheets show as text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: str) -> str:
    """A text cell a spreadsheet will not run as a formula: a leading ``'`` is added
    when the cell starts with ``= + - @``, a tab or a carriage return (numbers such as
    ``-3.5`` are left alone), or with ``'`` itself (so :func:`csv_unsafe` is exact)."""
    if not cell:
        return cell
    if cell[0] == "'" or (cell.startswith(FORMULA_START) and not _is_number(cell)):
        return "'" + cell
    return cell


def csv_unsafe(cell: str) -> str:
    """The text :func:`csv_safe` neutralised (one leading ``'`` removed when it
    precedes a formula start or another ``'``)."""
    if len(cell) > 1 and cell[0] == "'" and (cell[1] == "'" or cell[1:].startswith(FORMULA_START)):
        return cell[1:]
    return cell


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def fmt(v: float) -> str:
    """A number as text that reads back exactly (integers without a trailing .0)."""
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
