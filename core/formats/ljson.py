"""menpo ``.ljson`` landmark files, alone or among ``.pts`` files in a face folder.

menpo (and its landmarker.io) store a landmark group as JSON, in three versions:

* v1: ``{"groups": [{"label", "landmarks": [{"point": [y, x]}], "connectivity"}]}``,
  the groups concatenated, each group's connectivity relative to it;
* v2: ``{"labels": [{"label", "mask": [i...]}], "landmarks": {"points", "connectivity"}}``;
* v3: ``{"groups": {NAME: <a v2 body>}}``, several named groups (menpo's own
  ``lenna.ljson`` has ``LJSON`` with 68 points and ``pupils`` with 2).

Points are menpo's ``[y, x]`` (row, column), 0-based pixel centres, ``null`` for a
missing point; they are turned into Gumshoe's ``(x, y)``. From a v3 file the group
with the most points is read. Keypoint names come from the labels (``jaw_0``...); a
68-point group is the iBUG 300-W markup (schema ``ibug68``), as in menpo. Flip
pairs are not guessed from these names: a label's points run across the face, so
``left_eye_0`` does not mirror ``right_eye_0``. Connectivity becomes the skeleton.

The ``pts`` format (:class:`PtsLjsonReader`) reads a folder of ``.pts`` and
``.ljson`` files together (menpo's example folder mixes both); ``ljson`` reads one
file or a folder of ``.ljson`` only. Each file goes with the image beside it that
has the same stem.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import ImageFinder, rel_key, visibility_of, walk
from core.formats.guard import read_text
from core.formats.pts import PtsReader, pts_items, read_pts
from core.project import LabelSchema
from core.schemas import IBUG68, landmarks_schema, schema_for_keypoints

SUFFIX = ".ljson"
LIMIT = 16 << 20
# menpo's labels of the iBUG 68-point face, in order, with their sizes
MENPO_IBUG68 = (("jaw", 17), ("left_eyebrow", 5), ("right_eyebrow", 5), ("nose", 9),
                ("left_eye", 6), ("right_eye", 6), ("mouth", 20))


@dataclass(frozen=True)
class Landmarks:
    points: np.ndarray  # (K, 2) x, y; NaN where missing
    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    labels: tuple[tuple[str, int], ...]  # (label, number of points), in point order


def _points(raw: Any, what: str) -> np.ndarray:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{what}: no points")
    out = np.full((len(raw), 2), np.nan)
    for i, p in enumerate(raw):
        if not isinstance(p, list) or len(p) != 2:
            raise ValueError(f"{what}: point {i} is not [y, x]")
        if p[0] is None and p[1] is None:
            continue
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in p):
            raise ValueError(f"{what}: point {i} is not two numbers or two nulls")
        y, x = float(p[0]), float(p[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"{what}: point {i} is not finite")
        out[i] = x, y
    return out


def _edges(raw: Any, n: int, offset: int = 0) -> list[tuple[int, int]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("connectivity is not a list of pairs")
    out = []
    for e in raw:
        if not (isinstance(e, list) and len(e) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in e)):
            raise ValueError("connectivity is not a list of index pairs")
        a, b = e[0] + offset, e[1] + offset
        if not (0 <= a < n and 0 <= b < n) or a == b:
            raise ValueError(f"connectivity pair {e} is out of range")
        out.append((a, b))
    return out


def _labelled(points: np.ndarray, labels: Any, edges: list[tuple[int, int]]) -> Landmarks:
    n = len(points)
    names = [f"p{i}" for i in range(n)]
    sizes: list[tuple[str, int]] = []
    if labels is not None and not isinstance(labels, list):
        raise ValueError("labels is not a list")
    for lab in labels or []:
        if not isinstance(lab, dict) or not isinstance(lab.get("label"), str) or \
                not isinstance(lab.get("mask"), list):
            raise ValueError("a label is not {label, mask}")
        mask = lab["mask"]
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in mask):
            raise ValueError(f"label {lab['label'][:40]!r}: mask index out of range")
        for j, i in enumerate(mask):
            names[i] = f"{lab['label']}_{j}"
        sizes.append((lab["label"], len(mask)))
    if len(set(names)) != n:
        raise ValueError("labels name a point twice")
    return Landmarks(points, tuple(names), tuple(edges), tuple(sizes))


def parse_ljson(text: str) -> Landmarks:
    """The landmarks of a .ljson document; ValueError with a one-line reason."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not readable JSON ({exc})") from None
    except RecursionError:
        raise ValueError("not readable JSON (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise ValueError("not a menpo landmark file (no JSON object)")
    version = doc.get("version")
    if version == 1 and isinstance(doc.get("groups"), list):
        pts, edges, names, sizes = [], [], [], []
        for g in doc["groups"]:
            if not isinstance(g, dict) or not isinstance(g.get("landmarks"), list):
                raise ValueError("v1 group without a landmarks list")
            label = str(g.get("label", "group"))
            raw = [p.get("point") if isinstance(p, dict) else None for p in g["landmarks"]]
            offset = len(pts)
            pts.extend(raw)
            names += [f"{label}_{j}" for j in range(len(raw))]
            sizes.append((label, len(raw)))
            edges += [(a, b) for a, b in _edges(g.get("connectivity"), offset + len(raw), offset)]
        if len(set(names)) != len(names):
            raise ValueError("two groups have the same label")
        return Landmarks(_points(pts, "landmarks"), tuple(names), tuple(edges), tuple(sizes))
    if version == 2 and isinstance(doc.get("landmarks"), dict):
        body = doc
    elif version == 3 and isinstance(doc.get("groups"), dict) and doc["groups"]:
        groups = [g for g in doc["groups"].values() if isinstance(g, dict)
                  and isinstance(g.get("landmarks"), dict)
                  and isinstance(g["landmarks"].get("points"), list)]
        if not groups:
            raise ValueError("v3 file without a group of points")
        body = max(groups, key=lambda g: len(g["landmarks"]["points"]))
    else:
        raise ValueError(f"unknown ljson version {str(version)[:20]!r} (menpo writes 1, 2, 3)")
    lms = body["landmarks"]
    points = _points(lms.get("points"), "landmarks")
    return _labelled(points, body.get("labels"), _edges(lms.get("connectivity"), len(points)))


def read_ljson(path: Path) -> Landmarks:
    return parse_ljson(read_text(path, LIMIT))


def schema_of(lms: Landmarks) -> LabelSchema:
    if len(lms.points) == IBUG68.n_keypoints and (lms.labels == MENPO_IBUG68 or not lms.labels):
        return IBUG68
    if all(n.startswith("p") and n[1:].isdecimal() for n in lms.names) and not lms.edges:
        return landmarks_schema(len(lms.points))
    return schema_for_keypoints(lms.names, lms.edges, name="ljson", flip_pairs=())


def ljson_item(path: Path, root: Path, schema: LabelSchema, finder: ImageFinder
               ) -> RawItem | Skip:
    where = rel_key(path, root)
    try:
        lms = read_ljson(path)
    except ValueError as exc:
        return Skip(where, str(exc))
    if len(lms.points) != schema.n_keypoints:
        return Skip(where, f"{schema.n_keypoints} points expected, found {len(lms.points)}")
    if np.isnan(lms.points).all():
        return Skip(where, "no point present (all null)")
    image = finder.find(path.parent, path.stem)
    if image is None:
        return Skip(where, f"no image named {path.stem}.* found")
    return RawItem(rel_key(image, root), image, lms.points, visibility_of(lms.points))


def _folder_schema(files: list[Path], source: Path) -> LabelSchema:
    """The schema of most readable files (by point count; the first such file's names)."""
    by_count: dict[int, LabelSchema] = {}
    counts: Counter[int] = Counter()
    for p in files:
        try:
            if p.suffix.lower() == SUFFIX:
                lms = read_ljson(p)
                n, schema = len(lms.points), schema_of(lms)
            else:
                n = len(read_pts(p))
                schema = IBUG68 if n == 68 else landmarks_schema(n)
        except ValueError:
            continue
        counts[n] += 1
        by_count.setdefault(n, schema)
    if not counts:
        raise FormatError(f"{source}: no readable .pts or .ljson file")
    return by_count[counts.most_common(1)[0][0]]


class LjsonReader:
    name = "ljson"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        return Path(source) if Path(source).is_dir() else Path(source).parent

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if source.is_dir():  # a folder that also has .pts files is the pts reader's
            return next(walk(source, (SUFFIX,)), None) is not None and \
                next(walk(source, (".pts",)), None) is None
        return source.suffix.lower() == SUFFIX

    def _files(self, source: Path) -> list[Path]:
        source = Path(source)
        if source.is_dir():
            return list(walk(source, (SUFFIX,)))
        if not source.exists():
            raise FormatError(f"{source}: no such file or folder")
        return [source]

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: ljson holds landmarks, not {task!r}")
        files = self._files(source)
        if not Path(source).is_dir():
            try:
                return schema_of(read_ljson(files[0]))
            except ValueError as exc:
                raise FormatError(f"{source}: {exc}") from None
        return _folder_schema(files, Path(source))

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        schema = self.schema(source, task)
        root = self.root(source)
        finder = ImageFinder()
        for p in self._files(source):
            yield ljson_item(p, root, schema, finder)


class PtsLjsonReader(PtsReader):
    """``pts``: a folder of iBUG ``.pts`` and menpo ``.ljson`` files (see the module
    docstring); the schema follows the point count most files have."""

    def sniff(self, source: Path) -> bool:
        return Path(source).is_dir() and next(walk(Path(source), (".pts", SUFFIX)), None) is not None

    def schema(self, source: Path, task: str) -> LabelSchema:
        root = self._folder(source)
        return _folder_schema(list(walk(root, (".pts", SUFFIX))), root)

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        root = self._folder(source)
        schema = self.schema(root, task)
        finder = ImageFinder()
        for p in walk(root, (".pts", SUFFIX)):
            if p.suffix.lower() == SUFFIX:
                yield ljson_item(p, root, schema, finder)
            else:
                yield from pts_items([p], None, root, schema.n_keypoints, finder)
