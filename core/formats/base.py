"""What every dataset reader yields and every writer takes.

A reader walks a source (a folder or a label file) and yields, lazily and in a
stable order, one :class:`RawItem` per sample or one :class:`Skip` per broken
item (naming the file and the reason, one line). Readers do not decode images:
the importer does, once, and skips unreadable images itself. Readers never
raise for a bad item; they raise :class:`FormatError` only when the source as a
whole cannot be read (missing folder, unparseable index file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.paths import one_line, shown
from core.project import LabelSchema


class FormatError(Exception):
    """The source as a whole cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class RawItem:
    key: str  # unique and stable within the source, e.g. the image path relative to the root
    image: Path  # absolute path of the image file
    points: np.ndarray | None = None  # (K, 2) float64 image pixels, NaN where missing
    visibility: np.ndarray | None = None  # (K,) int: 0 missing, 1 occluded, 2 visible
    age: float | None = None
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1


@dataclass(frozen=True)
class Skip:
    path: str  # the file at fault
    reason: str  # one line, e.g. "68 points expected, found 67"

    def __str__(self) -> str:
        """One line whatever the names hold: the path quoted when it is not plain
        (see :func:`core.paths.shown`), control characters in the reason escaped."""
        return f"{shown(self.path)}: {one_line(self.reason)}"


class Reader(Protocol):
    name: str  # the --format value
    tasks: tuple[str, ...]  # tasks it can produce; the first is the default

    def schema(self, source: Path, task: str) -> LabelSchema: ...

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]: ...

    def root(self, source: Path) -> Path:
        """Folder that image paths are stored relative to."""
        ...

    def sniff(self, source: Path) -> bool:
        """True if ``source`` looks like this format (for ``--format auto``)."""
        ...
