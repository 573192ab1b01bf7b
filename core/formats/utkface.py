"""UTKFace: the age is the first field of each image's name,
``age_gender_race_date.jpg.chip.jpg`` (a few names lack the race field; only the age
is read). Every image under the folder is one sample, keyed by its relative path."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import IMAGE_EXTS, rel_key, walk
from core.project import LabelSchema
from core.schemas import AGE

AGE_FIELD = re.compile(r"^(\d{1,3})_")
# what sniff accepts: age_gender[_race]_date.jpg...
FULL_NAME = re.compile(r"^\d{1,3}_\d_(\d_)?\d{8,}\.jpg", re.IGNORECASE)
MAX_AGE = 130


class UtkfaceReader:
    name = "utkface"
    tasks = ("age",)

    def root(self, source: Path) -> Path:
        return Path(source)

    def sniff(self, source: Path) -> bool:
        if not Path(source).is_dir():
            return False
        names = [p.name for p in islice(walk(Path(source), IMAGE_EXTS), 50)]
        return bool(names) and sum(bool(FULL_NAME.match(n)) for n in names) > len(names) / 2

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "age":
            raise FormatError(f"{source}: UTKFace has ages, not {task!r}")
        return AGE

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        root = Path(source)
        self.schema(root, task)
        if not root.is_dir():
            raise FormatError(f"{root}: not a folder")
        for image in walk(root, IMAGE_EXTS):
            m = AGE_FIELD.match(image.name)
            if m is None:
                yield Skip(rel_key(image, root), "name does not start with an age (age_...)")
            elif int(m.group(1)) > MAX_AGE:
                yield Skip(rel_key(image, root), f"age {m.group(1)} in the name is implausible")
            else:
                yield RawItem(rel_key(image, root), image, age=float(m.group(1)))
