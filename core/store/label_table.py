"""Samples with their labels column by column: a chunk of a bulk read.

An export of a million samples reads them as :class:`LabelTable` chunks
(:meth:`~core.store.samples.SamplesMixin.iter_label_tables`) instead of a
:class:`~core.store.records.Sample` and a :class:`~core.store.records.Label` per
sample: the points of a chunk are one array, and nothing is built per sample that a
writer does not need.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.store import codec
from core.store.records import Label, LabelSchema, Sample

Odd = tuple[np.ndarray | None, np.ndarray | None]  # (points, visibility) as stored


@dataclass(frozen=True)
class LabelTable:
    """``points``/``visibility`` hold the rows whose label has the schema's landmark
    count (NaN / 0 elsewhere); ``odd`` the (points, visibility) of labelled rows that
    do not fit (another count, or no points); ``ages`` NaN where there is none."""

    ids: np.ndarray  # int64
    keys: list[str]
    roots: list[str]  # the source root of each sample (absolute)
    paths: list[str]  # relative to the root, forward slashes
    boxes: list[tuple[float, float, float, float] | None]
    statuses: list[str]  # review status
    labelled: np.ndarray  # bool: the sample has a label
    points: np.ndarray | None  # (n, k, 2) float64, NaN where missing; None: see grid
    visibility: np.ndarray | None  # (n, k) int8
    ages: np.ndarray  # float64
    odd: dict[int, Odd] = field(default_factory=dict)
    # the points as the project stores them, read without decoding: (n, k, 2) int32 in
    # 1/10000 px, codec.POINT_MISSING where missing (then ``points`` is None)
    grid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def point_array(self) -> np.ndarray | None:
        """``points``, decoded from ``grid`` where that holds them (None for ages)."""
        if self.grid is None:
            return self.points
        return np.where(self.grid == codec.POINT_MISSING, np.nan, self.grid / codec.POINT_SCALE)

    def take(self, keep: np.ndarray) -> LabelTable:
        """The rows where ``keep`` (bool) is true."""
        if keep.all():
            return self
        idx = np.flatnonzero(keep)
        new_row = {int(i): j for j, i in enumerate(idx)}
        return LabelTable(
            self.ids[idx], [self.keys[i] for i in idx], [self.roots[i] for i in idx],
            [self.paths[i] for i in idx], [self.boxes[i] for i in idx],
            [self.statuses[i] for i in idx], self.labelled[idx],
            None if self.points is None else self.points[idx],
            None if self.visibility is None else self.visibility[idx], self.ages[idx],
            {new_row[i]: v for i, v in self.odd.items() if i in new_row},
            None if self.grid is None else self.grid[idx])


def table_of_rows(rows: Sequence[Sequence[Any]], k: int, ages_only: bool) -> LabelTable:
    """A :class:`LabelTable` of rows (id, key, root, path, box, status, label id, points,
    visibility, age): the points of all rows with ``k`` landmarks decoded at once."""
    ids, keys, roots, paths, boxes, statuses, label_ids, blobs, vis_blobs, ages = zip(*rows, strict=True)
    n = len(rows)
    labelled = np.fromiter((i is not None for i in label_ids), bool, n)
    grid = visibility = None
    odd: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = {}
    if not ages_only:
        fits = np.fromiter((isinstance(b, bytes) and len(b) == 8 * k for b in blobs), bool, n)
        grid = np.full((n, k, 2), codec.POINT_MISSING, np.int32)
        if fits.any():
            grid[fits] = np.frombuffer(b"".join(b for b, ok in zip(blobs, fits, strict=True) if ok),
                                       "<i4").reshape(-1, k, 2)
        visibility = np.where((grid != codec.POINT_MISSING).all(axis=2), 2, 0).astype(np.int8)
        for i in np.flatnonzero(labelled & ((~fits) | np.fromiter(
                (v is not None for v in vis_blobs), bool, n))).tolist():
            pts = codec.decode_points(grid[i].tobytes() if fits[i] else blobs[i])
            vis = codec.decode_visibility(vis_blobs[i], pts)
            if fits[i]:
                visibility[i] = vis
            else:
                odd[i] = (pts, vis)
    return LabelTable(np.array(ids, np.int64), list(keys), list(roots), list(paths),
                      [None if b is None else _box(i, b) for i, b in zip(ids, boxes, strict=True)],
                      list(statuses), labelled, None, visibility,
                      np.array([np.nan if a is None else a for a in ages], np.float64), odd, grid)



def _box(sample_id: int, text: Any) -> tuple[float, float, float, float] | None:
    try:
        return codec.decode_box(text)
    except ValueError as exc:
        raise ValueError(f"sample {sample_id}: {exc}") from None


def label_table(schema: LabelSchema, records: Sequence[tuple[Sample, Label | None]]) -> LabelTable:
    """A table of (sample, label) records (a label of None: an unlabelled sample)."""
    n = len(records)
    landmarks = schema.task != "age"
    k = schema.n_keypoints if landmarks else 0
    labelled = np.fromiter((lb is not None for _, lb in records), bool, n)
    fits = np.fromiter((lb is not None and lb.points is not None and np.shape(lb.points) == (k, 2)
                        and (lb.visibility is None or np.shape(lb.visibility) == (k,))
                        for _, lb in records), bool, n) if landmarks else np.zeros(n, bool)
    points = visibility = None
    if landmarks:
        points = np.full((n, k, 2), np.nan)
        if fits.any():
            points[fits] = np.stack([lb.points for (_, lb), ok in zip(records, fits, strict=True)
                                     if ok])
        visibility = np.where(np.isfinite(points).all(axis=2), 2, 0).astype(np.int8)
        for i, (_, lb) in enumerate(records):
            if fits[i] and lb is not None and lb.visibility is not None:
                visibility[i] = lb.visibility
    odd = {i: (lb.points, lb.visibility) for i, (_, lb) in enumerate(records)
           if landmarks and lb is not None and not fits[i]}
    ages = np.array([np.nan if lb is None or lb.age is None else lb.age for _, lb in records],
                    np.float64)
    return LabelTable(np.array([s.id for s, _ in records], np.int64), [s.key for s, _ in records],
                      [s.root for s, _ in records], [s.path for s, _ in records],
                      [s.box for s, _ in records], [s.review_status for s, _ in records],
                      labelled, points, visibility, ages, odd)


def label_tables(schema: LabelSchema, records: Iterable[tuple[Sample, Label | None]],
                 chunk: int = 4096) -> Iterator[LabelTable]:
    """:func:`label_table` for ``chunk`` records at a time."""
    part: list[tuple[Sample, Label | None]] = []
    for r in records:
        part.append(r)
        if len(part) == chunk:
            yield label_table(schema, part)
            part = []
    if part:
        yield label_table(schema, part)
