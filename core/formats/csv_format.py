"""CSV labels, one row per sample; image paths relative to the CSV's folder (or absolute).

Landmarks: ``image,x0,y0,x1,y1,...`` (point i in columns xi, yi; both cells empty
for a missing point), optionally ``v0,v1,...`` (visibility 0/1/2; empty means 2
for a present point) and ``box_x0,box_y0,box_x1,box_y1`` (the sample's box).
Ages: ``image,age`` (plus the optional box columns). Other columns are ignored.

Keys are the ``image`` cell; an image named on several rows (several faces) gets
``image#0``, ``image#1``... in row order (counting broken rows too, so that
fixing one does not renumber the others). Written image cells that a spreadsheet
would take for a formula get a leading ``'`` (OWASP's rule), removed on reading. A broken row is one Skip naming
``file.csv:line``; a header that fits neither layout makes the file unreadable.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pickle
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.formats import table_text
from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import csv_safe, csv_unsafe, fmt, number, rel_key
from core.paths import INDEX_FILE_LIMIT, ReadError, is_file, read_regular, shown
from core.project import Label, LabelSchema, Sample
from core.schemas import AGE, landmarks_schema
from core.store.codec import POINT_MISSING
from core.store.label_table import LabelTable, label_tables

BOX = ("box_x0", "box_y0", "box_x1", "box_y1")


@dataclass(frozen=True)
class Layout:
    """Column indices of a CSV header."""

    task: str
    width: int  # number of header cells
    age: int | None = None
    xy: tuple[tuple[int, int], ...] = ()
    v: tuple[int, ...] = ()
    box: tuple[int, ...] = ()

    @classmethod
    def parse(cls, header: Sequence[str]) -> Layout:
        """ValueError if the header fits neither layout."""
        cols = {c.strip().lower(): i for i, c in enumerate(header)}
        if not header or header[0].strip().lower() != "image":
            raise ValueError("the first column must be 'image'")
        k = 0
        while f"x{k}" in cols or f"y{k}" in cols:
            if f"x{k}" not in cols or f"y{k}" not in cols:
                raise ValueError(f"point {k} needs both x{k} and y{k}")
            k += 1
        if any(c.startswith(("x", "y")) and c[1:].isdecimal() and int(c[1:]) >= k for c in cols):
            raise ValueError(f"point columns must run x0, y0 ... without gaps (stopped at {k})")
        box = tuple(cols[c] for c in BOX if c in cols)
        if len(box) not in (0, 4):
            raise ValueError(f"box needs all of {', '.join(BOX)}")
        if ("age" in cols) == (k > 0):
            raise ValueError("expected either an 'age' column or point columns x0, y0, ...")
        if k == 0:
            return cls("age", len(header), age=cols["age"], box=box)
        v = tuple(cols[f"v{i}"] for i in range(k) if f"v{i}" in cols)
        if len(v) not in (0, k):
            raise ValueError(f"visibility needs all of v0..v{k - 1} or none")
        return cls("landmarks", len(header),
                   xy=tuple((cols[f"x{i}"], cols[f"y{i}"]) for i in range(k)), v=v, box=box)

    def values(self, row: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray | None,
                                                   float | None, tuple[float, ...] | None]:
        """points, visibility, age, box of one row; ValueError naming the bad cell."""
        if len(row) != self.width:
            raise ValueError(f"expected {self.width} cells, found {len(row)}")
        box = tuple(number(row[i], "box") for i in self.box) or None
        if self.task == "age":
            age = number(row[self.age], "age")
            if age < 0:
                raise ValueError(f"age: negative ({fmt(age)})")
            return None, None, age, box
        k = len(self.xy)
        points = np.full((k, 2), np.nan)
        vis = np.zeros(k, np.int8)
        for i, (cx, cy) in enumerate(self.xy):
            x, y = row[cx].strip(), row[cy].strip()
            v = row[self.v[i]].strip() if self.v else ""
            if v not in ("", "0", "1", "2"):
                raise ValueError(f"v{i}: visibility must be 0, 1 or 2, found {v[:20]!r}")
            if not x and not y:
                continue
            if not x or not y:
                raise ValueError(f"point {i}: x{i} and y{i} must both be empty or both numbers")
            if v != "0":
                points[i] = number(x, f"x{i}"), number(y, f"y{i}")
                vis[i] = int(v or 2)
        if not vis.any():
            raise ValueError("no point present")
        return points, vis, None, box


def _rows(path: Path) -> Iterator[tuple[int, list[str] | str]]:
    """(line number, cells) per non-blank row, or (line, reason) where csv gives up."""
    try:
        text = read_regular(path, INDEX_FILE_LIMIT).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"{shown(path)}: not UTF-8 text") from None
    except ReadError as exc:
        raise FormatError(f"{shown(path)}: {exc}") from None
    yield from text_rows(text)


def text_rows(text: str) -> Iterator[tuple[int, list[str] | str]]:
    """(line number, cells) per non-blank row of CSV ``text``, or (line, reason) where
    csv gives up on a row (the rest is still read)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, f"malformed CSV ({exc})"
            continue
        if any(c.strip() for c in row):
            yield reader.line_num, row


def _header(path: Path) -> tuple[Layout, Iterator[tuple[int, list[str] | str]]]:
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise FormatError(f"{path}: empty file")
    line, header = first
    if isinstance(header, str):
        raise FormatError(f"{path}:{line}: {header}")
    try:
        return Layout.parse(header), rows
    except ValueError as exc:
        raise FormatError(f"{path}:{line}: bad header: {exc}") from None


class CsvReader:
    name = "csv"
    tasks = ("landmarks", "age")

    def root(self, source: Path) -> Path:
        return Path(source).parent

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if not (source.is_file() and source.suffix.lower() == ".csv"):
            return False
        try:
            _header(source)
        except FormatError:
            return False
        return True

    def default_task(self, source: Path) -> str:
        """What the header holds: ``age`` for ``image,age``, else ``landmarks``."""
        try:
            return _header(Path(source))[0].task
        except FormatError:
            return self.tasks[0]  # schema() names the problem

    def schema(self, source: Path, task: str) -> LabelSchema:
        layout, _ = _header(Path(source))
        if task != layout.task:
            raise FormatError(f"{source}: the file holds {layout.task}, not {task!r}")
        return AGE if task == "age" else landmarks_schema(len(layout.xy))

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        source = Path(source)
        self.schema(source, task)
        root = self.root(source)
        layout, rows = _header(source)
        rows = list(rows)
        names = Counter(r[0].strip() for _, r in rows if not isinstance(r, str) and r)
        seen: Counter[str] = Counter()
        for line, row in rows:
            where = f"{source.name}:{line}"
            if isinstance(row, str):
                yield Skip(where, row)
                continue
            image = _image_cell(row[0].strip(), root)
            key = Path(image).as_posix()
            if names[image] > 1:
                key = f"{key}#{seen[image]}"
                seen[image] += 1
            try:
                if not image:
                    raise ValueError("empty image cell")
                points, vis, age, box = layout.values(row)
            except ValueError as exc:
                yield Skip(where, str(exc))
                continue
            path = root / image
            if not is_file(path):
                yield Skip(where, f"image missing: {image}")
                continue
            yield RawItem(key, path, points, vis, age, box)


def _image_cell(cell: str, root: Path) -> str:
    """The image path of a cell: one Gumshoe wrote with a formula start neutralised
    (``'=x.jpg``, see :func:`~core.formats.common.csv_safe`) reads as ``=x.jpg`` unless
    a file is really named with the apostrophe."""
    plain = csv_unsafe(cell)
    if plain != cell and not is_file(root / cell):
        return plain
    return cell


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int:
    """One CSV in the layout above; ``image`` is each image's path relative to the
    CSV's folder. Box columns are written when any sample has a box, visibility columns
    when any point is occluded (visibility 1)."""
    return write_tables(out, schema, label_tables(schema, records))


def write_tables(out: Path, schema: LabelSchema, tables: Iterable[LabelTable]) -> int:
    """:func:`write` of samples and labels read as column chunks (a bulk export).

    The tables are read once into a scratch file beside ``out`` (the columns are known
    only after the last one), then each chunk is formatted as a whole
    (:mod:`core.formats.table_text`; values off its grid one row at a time, as
    :func:`~core.formats.common.fmt` writes them)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out.parent, prefix=".gumshoe-csv-") as spool:
        n, has_box, occluded = _spool(schema, tables, out.parent, spool)
        if schema.task == "age":
            cols = ["age"]
        else:
            k = schema.n_keypoints
            cols = [c for i in range(k) for c in (f"x{i}", f"y{i}")]
            cols += [f"v{i}" for i in range(k)] if occluded else []
        header = ["image", *(BOX if has_box else ()), *cols]
        spool.seek(0)
        with out.open("wb") as f:
            f.write(",".join(header).encode() + table_text.ROW_END)
            while True:
                try:
                    chunk = pickle.load(spool)
                except EOFError:
                    break
                f.write(_chunk_text(chunk, has_box, occluded, len(header)))
    return n


@dataclass
class _Chunk:
    """Rows read but not yet formatted: the image cells (UTF-8, quoted), box cells
    (``,x0,y0,x1,y1`` or None), and the labels: ages, or points as integers in
    1/10000 px with the present points and visibility digits; ``text`` holds the rows
    whose values are off that grid (or whose shape is odd) as (points, visibility)."""

    images: list[bytes]
    boxes: list[str | None]
    ages: list[float | None] | None = None
    q: np.ndarray | None = None  # (n, k, 2) int32
    present: np.ndarray | None = None  # (n, k) bool
    vis: np.ndarray | None = None  # (n, k) uint8
    text: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)


def _spool(schema: LabelSchema, tables: Iterable[LabelTable], folder: Path,
           spool: Any) -> tuple[int, bool, bool]:
    """Read the tables into ``spool``; (rows, any box, any occluded point)."""
    cells = _ImageCells(folder)
    n, has_box, occluded = 0, False, False
    for table in tables:
        if not len(table):
            continue
        chunk = _chunk(schema, table, cells)
        n += len(table)
        has_box = has_box or any(b is not None for b in chunk.boxes)
        occluded = occluded or (chunk.vis is not None and bool((chunk.vis == 1).any())) or any(
            v is not None and (np.asarray(v) == 1).any() for _, v in chunk.text.values())
        pickle.dump(chunk, spool, protocol=pickle.HIGHEST_PROTOCOL)
    return n, has_box, occluded


def _chunk(schema: LabelSchema, t: LabelTable, cells: _ImageCells) -> _Chunk:
    images = cells.many(t.roots, t.paths)
    boxes = [None if b is None else "," + ",".join(fmt(v) for v in b) for b in t.boxes]
    chunk = _Chunk(images, boxes)
    if schema.task == "age":
        chunk.ages = [None if math.isnan(a) else float(a) for a in t.ages.tolist()]
        return chunk
    assert t.visibility is not None
    vis = t.visibility
    fast = ((vis >= 0) & (vis <= 9)).all(axis=1)
    if t.grid is not None:  # as stored: on the grid already
        present = (t.grid != POINT_MISSING).all(axis=2)
        q = np.where(present[..., None], t.grid, 0).astype(np.int32)
    else:
        assert t.points is not None
        present = np.isfinite(t.points).all(axis=2)
        q, exact = table_text.on_grid(t.points)
        fast &= (exact | ~present[..., None]).all(axis=(1, 2))
    fast[list(t.odd)] = False
    chunk.q, chunk.present, chunk.vis = q.astype(np.int32), present, vis.astype(np.uint8)
    slow = np.flatnonzero(~fast)
    points = t.point_array() if len(slow) else None
    chunk.text = {int(i): t.odd.get(int(i), (points[i], t.visibility[i]))  # type: ignore[index]
                  for i in slow}
    return chunk


def _chunk_text(chunk: _Chunk, has_box: bool, occluded: bool, width: int) -> bytes:
    """The CSV rows of a chunk."""
    prefixes = chunk.images
    if has_box:
        prefixes = [img + (",,,," if box is None else box).encode()
                    for img, box in zip(prefixes, chunk.boxes, strict=True)]
    if chunk.ages is not None:
        return b"".join(p + b"," + (fmt(a).encode() if a is not None else b"") + table_text.ROW_END
                        for p, a in zip(prefixes, chunk.ages, strict=True))
    assert chunk.q is not None and chunk.present is not None and chunk.vis is not None
    if chunk.text:
        prefixes = list(prefixes)
        n_cells = width - 1 - (4 if has_box else 0)
        for i, (points, visibility) in chunk.text.items():
            cells = _point_cells(points, visibility, n_cells)
            prefixes[i] += ("," + ",".join(cells)).encode() if cells else b""
    text_rows = np.zeros(len(prefixes), bool)
    text_rows[list(chunk.text)] = True
    n, k = chunk.present.shape
    if any(b"\0" in p for p in prefixes):  # the layout drops NUL bytes: one row at a time
        return b"".join(_row_text(p, chunk, i, occluded) for i, p in enumerate(prefixes))
    return table_text.rows_text(
        prefixes, chunk.q.reshape(n, 2 * k).astype(np.int64), np.repeat(~chunk.present, 2, axis=1),
        chunk.vis if occluded else None, ~chunk.present if occluded else None, text_rows)


def _row_text(prefix: bytes, chunk: _Chunk, i: int, occluded: bool) -> bytes:
    """One row of a chunk without :mod:`~core.formats.table_text` (a NUL in its prefix)."""
    assert chunk.q is not None and chunk.present is not None and chunk.vis is not None
    if i in chunk.text:
        return prefix + table_text.ROW_END
    cells = [fmt(v / table_text.SCALE) if p else "" for xy, p in zip(chunk.q[i], chunk.present[i],
                                                                     strict=True) for v in xy]
    if occluded:
        cells += [str(v) if p else "0" for v, p in zip(chunk.vis[i], chunk.present[i], strict=True)]
    return prefix + ("," + ",".join(cells)).encode() + table_text.ROW_END


class _ImageCells:
    """The ``image`` cell of each sample as bytes: its path relative to the CSV's folder,
    neutralised for spreadsheets and quoted as :mod:`csv` would. The relative path of a
    source root is worked out once; a sample's plain relative path is appended to it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.prefixes: dict[str, tuple[str, str | None]] = {}

    def _prefix(self, root: str) -> tuple[str, str | None]:
        """``root`` relative to the folder, with a trailing ``/``, and where the folder
        lies inside the root, the first folder on the way down to it (``a/`` for
        ``root/a/b``): a path through it comes back down, so it is worked out whole."""
        if root not in self.prefixes:
            top, here = os.path.abspath(root), os.path.abspath(self.folder)
            rel = rel_key(Path(root), self.folder)
            through = None
            if here != top and here.startswith(top.rstrip(os.sep) + os.sep):
                through = Path(os.path.relpath(here, top)).parts[0] + "/"
            self.prefixes[root] = ("" if rel == "." else rel + "/", through)
        return self.prefixes[root]

    def many(self, roots: list[str], paths: list[str]) -> list[bytes]:
        """The cells of many samples: those of one source with plain paths (the usual
        chunk) joined, checked and encoded at once."""
        if roots and roots.count(roots[0]) == len(roots):
            prefix, through = self._prefix(roots[0])
            joined = "\0" + "\0".join(paths)  # no file name holds a NUL
            names = (joined + "/").replace("\0", "/")  # every name between two slashes
            if not (any(c in joined for c in ',"\r\n\\:')
                    or any(odd in names for odd in ("//", "/./", "/../"))
                    or (not prefix and any("\0" + c in joined for c in "=+-@\t'"))
                    or (through and "\0" + through in joined)):
                return (prefix + ("\0" + prefix).join(paths)).encode().split(b"\0")
        return [self(r, p) for r, p in zip(roots, paths, strict=True)]

    def __call__(self, root: str, path: str) -> bytes:
        prefix, through = self._prefix(root)
        if _PLAIN_PATH.match(path) and not (through and path.startswith(through)):
            cell = prefix + path
        else:
            cell = rel_key(Path(root) / path, self.folder)
        cell = csv_safe(cell)
        if _NEEDS_QUOTES.search(cell):
            buf = io.StringIO()
            csv.writer(buf).writerow([cell, ""])
            cell = buf.getvalue()[:-3]  # the cell as csv quotes it, without ",\r\n"
        return cell.encode()


# a relative path of plain names (no ".", "..", empty name, backslash or drive)
_PLAIN_PATH = re.compile(r"(?!\.\.?(?:/|\Z))[^/\\:]+(?:/(?!\.\.?(?:/|\Z))[^/\\:]+)*\Z")
_NEEDS_QUOTES = re.compile('[,"\r\n]')


def _point_cells(points: np.ndarray | None, visibility: np.ndarray | None,
                 n_cells: int) -> list[str]:
    pts = np.asarray([] if points is None else points, dtype=np.float64).reshape(-1, 2)
    cells = [fmt(v) if math.isfinite(x) and math.isfinite(y) else ""
             for x, y in pts for v in (x, y)]
    if n_cells > len(cells):  # visibility columns
        present = np.isfinite(pts).all(axis=1)
        vis = visibility if visibility is not None else present * 2
        cells += [str(int(v)) if p else "0" for v, p in zip(vis, present, strict=True)]
    return cells
