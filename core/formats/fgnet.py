"""FG-NET as published: ``images/NNNAaa[a|b].JPG`` (person NNN at age ``aa``) and
``points/nnnaaa[a|b].pts`` (68 points in FG-NET's own markup, lower-case stems).

``--task landmarks`` pairs each .pts with its image (schema ``fgnet68``);
``--task age`` reads the age from each image's name (schema ``age``). Points
outside the image (one FG-NET face has some) are kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import IMAGE_EXTS, ImageFinder, rel_key, walk
from core.formats.pts import SUFFIXES, pts_items
from core.project import LabelSchema
from core.schemas import AGE, FGNET68

NAME = re.compile(r"^\d{3}a(\d{2})[ab]?$", re.IGNORECASE)


class FgnetReader:
    name = "fgnet"
    tasks = ("landmarks", "age")

    def root(self, source: Path) -> Path:
        return Path(source)

    def sniff(self, source: Path) -> bool:
        points = Path(source) / "points"
        return (Path(source) / "images").is_dir() and points.is_dir() and any(
            NAME.match(p.stem) for p in walk(points, SUFFIXES))

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task not in self.tasks:
            raise FormatError(f"{source}: FG-NET has landmarks and ages, not {task!r}")
        return FGNET68 if task == "landmarks" else AGE

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        root = Path(source)
        self.schema(root, task)
        images, points = root / "images", root / "points"
        for folder in (images, points) if task == "landmarks" else (images,):
            if not folder.is_dir():
                raise FormatError(f"{folder}: missing (FG-NET has images/ and points/)")
        if task == "age":
            yield from self._ages(root, images)
            return
        labelled = set()
        for item in pts_items(walk(points, SUFFIXES), images, root, FGNET68.n_keypoints,
                              ImageFinder()):
            if isinstance(item, RawItem):
                labelled.add(item.image)
            yield item
        for image in walk(images, IMAGE_EXTS):
            if image not in labelled:
                yield Skip(rel_key(image, root), f"no points/{image.stem.lower()}.pts")

    @staticmethod
    def _ages(root: Path, images: Path) -> Iterator[RawItem | Skip]:
        for image in walk(images, IMAGE_EXTS):
            m = NAME.match(image.stem)
            if m is None:
                yield Skip(rel_key(image, root), "name is not NNNAaa[a|b] (age unknown)")
            else:
                yield RawItem(rel_key(image, root), image, age=float(m.group(1)))
