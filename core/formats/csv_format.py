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
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import csv_safe, csv_unsafe, fmt, number, rel_key
from core.paths import INDEX_FILE_LIMIT, ReadError, is_file, read_regular, shown
from core.project import Label, LabelSchema, Sample
from core.schemas import AGE, landmarks_schema

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
    out = Path(out)
    records = list(records)
    has_box = any(s.box is not None for s, _ in records)
    if schema.task == "age":
        cols = ["age"]
    else:
        k = schema.n_keypoints
        cols = [c for i in range(k) for c in (f"x{i}", f"y{i}")]
        if any(lb.visibility is not None and (np.asarray(lb.visibility) == 1).any()
               for _, lb in records):
            cols += [f"v{i}" for i in range(k)]
    header = ["image", *(BOX if has_box else ()), *cols]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for sample, label in records:
            row = [csv_safe(rel_key(sample.image_path, out.parent))]
            if has_box:
                row += [fmt(v) for v in sample.box] if sample.box is not None else [""] * 4
            if schema.task == "age":
                row.append(fmt(label.age) if label.age is not None else "")
            else:
                row += _point_cells(label, len(header) - len(row))
            w.writerow(row)
    return len(records)


def _point_cells(label: Label, n_cells: int) -> list[str]:
    pts = np.asarray(label.points, dtype=np.float64).reshape(-1, 2)
    cells = [fmt(v) if math.isfinite(x) and math.isfinite(y) else ""
             for x, y in pts for v in (x, y)]
    if n_cells > len(cells):  # visibility columns
        present = np.isfinite(pts).all(axis=1)
        vis = label.visibility if label.visibility is not None else present * 2
        cells += [str(int(v)) if p else "0" for v, p in zip(vis, present, strict=True)]
    return cells
