"""dlib imglab XML: ``<image file=...><box top left width height [ignore='1']>
<part name='00' x y/>...`` One sample per box that is not ignored, keyed
``image path#box index`` (the index counts every box of the image, ignored ones
too, so keys stay put when a box is ignored). Image paths are relative to the XML
file. Parts are numbered by name ('00'..'67'); parts absent from a box are missing.

The number of points is the most common highest part name + 1 over all boxes:
``ibug68`` for 68, ``landmarksN`` otherwise.

The source is one XML file, or a folder whose XML files are all read (files whose
boxes have no parts, such as dlib's detection-only ``training.xml``, are reported
once each and left out).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import MAX_KEYPOINTS, number, rel_key, visibility_of, walk
from core.paths import INDEX_FILE_LIMIT, ReadError, is_file, one_line, read_regular, shown
from core.project import LabelSchema
from core.schemas import IBUG68, landmarks_schema


def parse_xml(path: Path) -> ET.Element:
    """The root of an imglab file (read only if it is a regular file under the index
    size cap; expat refuses entity-expansion bombs, ElementTree never loads external
    entities)."""
    try:
        root = ET.fromstring(read_regular(path, INDEX_FILE_LIMIT))
    except ReadError as exc:
        raise FormatError(f"{shown(path)}: {exc}") from None
    except (ET.ParseError, RecursionError, ValueError) as exc:
        raise FormatError(f"{shown(path)}: not readable XML ({one_line(str(exc))})") from None
    if root.tag != "dataset" or root.find("images") is None:
        raise FormatError(f"{path}: not a dlib imglab file (no <dataset><images>)")
    return root


def _boxes(doc: ET.Element) -> Iterator[tuple[ET.Element, int, ET.Element]]:
    for image in doc.iter("image"):
        for i, box in enumerate(image.findall("box")):
            if box.get("ignore", "0") != "1":
                yield image, i, box


def _part_counts(doc: ET.Element) -> Counter[int]:
    """How many boxes have each number of parts (highest part name + 1)."""
    counts: Counter[int] = Counter()
    for _, _, box in _boxes(doc):
        names = [int(n) for p in box.iter("part")
                 if (n := p.get("name", "")).isdecimal() and int(n) < MAX_KEYPOINTS]
        if names:
            counts[max(names) + 1] += 1
    return counts


def _box_item(xml: Path, root: Path, image: ET.Element, index: int, box: ET.Element,
              n: int) -> RawItem | Skip:
    file = image.get("file")
    if not file:
        return Skip(rel_key(xml, root), "<image> without a file attribute")
    path = xml.parent / file
    key = f"{rel_key(path, root)}#{index}"
    try:
        left, top, width, height = (number(box.get(a, ""), f"box {a}")
                                    for a in ("left", "top", "width", "height"))
        points = np.full((n, 2), np.nan)
        for part in box.iter("part"):
            name = part.get("name", "")
            if not name.isdecimal() or int(name) >= n:
                raise ValueError(f"part name {name!r} is not one of 00..{n - 1:02d}")
            points[int(name)] = [number(part.get(a, ""), f"part {name} {a}") for a in "xy"]
    except ValueError as exc:
        return Skip(key, str(exc))
    if np.isnan(points).all():
        return Skip(key, "box has no landmark parts")
    if not is_file(path):
        return Skip(key, "image missing")
    return RawItem(key, path, points, visibility_of(points),
                   box=(left, top, left + width, top + height))


class DlibReader:
    name = "dlib"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        source = Path(source)
        return source if source.is_dir() else source.parent

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        files = walk(source, (".xml",)) if source.is_dir() else [source]
        for f in files:
            if f.suffix.lower() == ".xml" and f.is_file():
                with f.open("rb") as fh:
                    head = fh.read(4096)
                if b"<dataset" in head and b"<images" in head:
                    return True
        return False

    def _docs(self, source: Path) -> Iterator[tuple[Path, ET.Element | FormatError]]:
        source = Path(source)
        if not source.is_dir():
            yield source, parse_xml(source)
            return
        for f in walk(source, (".xml",)):
            try:
                yield f, parse_xml(f)
            except FormatError as exc:
                yield f, exc

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: dlib XML has landmarks, not {task!r}")
        counts = sum((_part_counts(d) for _, d in self._docs(source)
                      if isinstance(d, ET.Element)), Counter())
        if not counts:
            raise FormatError(f"{source}: no box with landmark parts")
        n = counts.most_common(1)[0][0]  # boxes with other counts are skipped
        return IBUG68 if n == 68 else landmarks_schema(n)

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        n = self.schema(source, task).n_keypoints
        root = self.root(source)
        seen: set[str] = set()
        for xml, doc in self._docs(source):
            if isinstance(doc, FormatError):
                yield Skip(rel_key(xml, root), str(doc).removeprefix(f"{shown(xml)}: "))
            elif not _part_counts(doc):
                yield Skip(rel_key(xml, root), "no box has landmark parts (a detection-only file)")
            else:
                for image, index, box in _boxes(doc):
                    item = _box_item(xml, root, image, index, box, n)
                    if isinstance(item, RawItem) and item.key in seen:
                        item = Skip(item.key, f"same image and box index as an earlier box ({rel_key(xml, root)})")
                    elif isinstance(item, RawItem):
                        seen.add(item.key)
                    yield item
