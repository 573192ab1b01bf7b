"""Helpers for the keypoint-format tests: real PNG frames, reading a source, and the
import -> export -> import round trip through a real project file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.export import export
from core.formats import RawItem, Skip, get_reader
from core.importer import import_source
from core.project import Project


def write_png(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """A real (decodable) PNG of noise."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def read(fmt: str, source: Path, task: str = "landmarks") -> tuple[list[RawItem], list[Skip]]:
    out = list(get_reader(fmt).read(source, task))
    assert all(isinstance(o, RawItem | Skip) for o in out)
    return [o for o in out if isinstance(o, RawItem)], [o for o in out if isinstance(o, Skip)]


def skips_by_where(skips: list[Skip]) -> dict[str, str]:
    by = {s.path: s.reason for s in skips}
    assert len(by) == len(skips), "one Skip per broken item"
    assert all("\n" not in str(s) for s in skips)
    return by


def labels(project: Project) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """key -> (points, visibility) of every sample's current label."""
    current = project.current_labels()
    return {s.key: (current[s.id].points, current[s.id].visibility) for s in project.samples()}


def assert_same(a: dict[str, tuple[np.ndarray, np.ndarray]],
                b: dict[str, tuple[np.ndarray, np.ndarray]], *, visibility: bool = True) -> None:
    """The same keys with the same points to 1e-4 (NaN where NaN) and presence."""
    assert a.keys() == b.keys()
    for key in a:
        (pa, va), (pb, vb) = a[key], b[key]
        np.testing.assert_allclose(pa, pb, atol=1e-4, err_msg=key)
        if visibility:
            np.testing.assert_array_equal(va, vb, err_msg=key)
        else:
            np.testing.assert_array_equal(va > 0, vb > 0, err_msg=key)


def import_new(path: Path, source: Path, fmt: str = "auto", task: str | None = None
               ) -> tuple[Project, object]:
    project = Project.open_or_create(path)
    result = import_source(project, source, fmt, task, workers=1)
    return project, result


def round_trip(tmp_path: Path, source: Path, fmt_in: str, fmt_out: str, out_name: str,
               edit=None, *, clean_source: bool = True):
    """Import ``source``, optionally edit the project, export as ``fmt_out``, import that
    export into a second project; returns (first project, second project, export path).
    The export must import without a skip (and the source too if ``clean_source``)."""
    first, result = import_new(tmp_path / "a.gumshoe", source, fmt_in)
    assert not (clean_source and result.skipped), result.skipped
    if edit is not None:
        edit(first)
    out = tmp_path / out_name
    export(first, out, fmt_out)
    second, again = import_new(tmp_path / "b.gumshoe", out, fmt_out)
    assert not again.skipped, again.skipped
    return first, second, out
