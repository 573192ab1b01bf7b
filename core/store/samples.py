"""Samples, their label history and review decisions.

Labels are append-only; ``samples.label_id`` names the current one. An edit that
says which version it replaces (``add_label(..., replaces=LABEL_ID)``) is refused
with :class:`LabelConflictError` when someone else wrote a newer version meanwhile
(compare-and-append), so two annotators never silently overwrite each other and
an undo never reverts someone else's edit. Review decisions likewise
(``set_review(..., replaces=STATUS)``).

Every bulk read is one statement per 500 ids (or one for all); imports commit in
short transactions of 500 samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from core.store import codec, files
from core.store.base import CHUNK, StoreBase, chunks, marks
from core.store.label_table import LabelTable, table_of_rows
from core.store.records import (
    LABEL_ORIGINS,
    REVIEW_STATUSES,
    SPLITS,
    Label,
    LabelConflictError,
    NewSample,
    ProjectError,
    ReviewEvent,
    Sample,
    now_iso,
)

SAMPLE_COLS = ("s.id, s.source_id, s.key, s.path, s.width, s.height, s.box, s.split,"
               " s.content_hash, s.review_status, src.root")
SAMPLE_FROM = "FROM samples s JOIN sources src ON src.id = s.source_id"
LABEL_COLS = ("l.id, l.sample_id, l.points, l.visibility, l.age, l.origin, l.author,"
              " l.created_at, l.note, l.replaces")
EVENT_COLS = "id, sample_id, status, author, created_at, note, replaces"


def _sample(r: Sequence[Any]) -> Sample:
    return Sample(int(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]),
                  codec.decode_box(r[6]), str(r[7]), str(r[8]), str(r[9]), str(r[10]))


def _label(r: Sequence[Any]) -> Label:
    pts = codec.decode_points(r[2])
    age = None if r[4] is None else float(r[4])
    return Label(int(r[0]), int(r[1]), pts, codec.decode_visibility(r[3], pts), age,
                 str(r[5]), str(r[6]), str(r[7]), str(r[8]), None if r[9] is None else int(r[9]))


def _when(iso: str | None) -> str:
    """'2026-12-02T10:41:51.409+00:00' -> '2026-12-02 10:41:51 UTC' for messages."""
    return "an unknown time" if not iso else iso[:19].replace("T", " ") + " UTC"


def _label_chunk(rows: Sequence[Sequence[Any]]) -> list[Label | None]:
    """:func:`_label` for many rows at once: the points of rows with the same number of
    landmarks are decoded as one array (a bulk export reads a million labels)."""
    out: list[Label | None] = [None] * len(rows)
    by_len: dict[int, list[int]] = {}  # default visibility, points of one length
    for i, r in enumerate(rows):
        if r[0] is not None and isinstance(r[2], bytes) and r[3] is None:
            by_len.setdefault(len(r[2]), []).append(i)
    for n_bytes, idx in by_len.items():
        if n_bytes % 8:
            continue
        pts = codec.decode_points(b"".join(rows[i][2] for i in idx)).reshape(len(idx), -1, 2)
        vis = np.where(np.isfinite(pts).all(axis=2), 2, 0).astype(np.int8)
        for j, i in enumerate(idx):
            r = rows[i]
            out[i] = Label(int(r[0]), int(r[1]), pts[j], vis[j],
                           None if r[4] is None else float(r[4]), str(r[5]), str(r[6]),
                           str(r[7]), str(r[8]), None if r[9] is None else int(r[9]))
    for i, r in enumerate(rows):
        if out[i] is None and r[0] is not None:
            out[i] = _label(r)
    return out


def _event(r: Sequence[Any]) -> ReviewEvent:
    return ReviewEvent(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), r[6])


class SamplesMixin(StoreBase):

    # ----------------------------------------------------------- samples

    def _sample_row(self, r: Sequence[Any]) -> Sample:
        return self._decode(f"sample {r[0]}", _sample, r)

    def _label_row(self, r: Sequence[Any]) -> Label:
        return self._decode(f"label {r[0]} (sample {r[1]})", _label, r)

    def existing_keys(self, source_id: int) -> set[str]:
        return {r[0] for r in self.conn.execute(
            "SELECT key FROM samples WHERE source_id = ?", (source_id,))}

    @staticmethod
    def _encode_label(points: Any, visibility: Any, age: float | None,
                      origin: str) -> tuple[bytes | None, bytes | None, float | None]:
        if origin not in LABEL_ORIGINS:
            raise ValueError(f"unknown label origin {origin!r}")
        if age is not None and not math.isfinite(float(age)):
            raise ValueError("age must be a finite number")
        if points is not None:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            return codec.encode_points(pts), codec.encode_visibility(visibility, pts), \
                None if age is None else float(age)
        return None, None, None if age is None else float(age)

    def add_samples(self, source_id: int, samples: Sequence[NewSample],
                    author: str = "import") -> list[int]:
        """Insert whole samples with their first label, in short transactions (paced
        like every bulk write, see :class:`files.Pacer`). Samples whose key the source
        already holds are left alone."""
        ids: list[int] = []
        t = now_iso()
        pace = files.Pacer(CHUNK)
        for part in pace.parts(list(samples)):
            enc = [(s, self._encode_label(s.points, s.visibility, s.age, "import"),
                    codec.encode_box(s.box)) for s in part]
            with pace.chunk(self):
                have = set(self.sample_ids_by_key(source_id, [s.key for s in part]))
                sid = self.conn.execute("SELECT coalesce(max(id), 0) FROM samples").fetchone()[0]
                lid = self.conn.execute("SELECT coalesce(max(id), 0) FROM labels").fetchone()[0]
                srows, lrows = [], []
                for s, (pts, vis, age), box in enc:
                    if s.key in have:
                        continue
                    have.add(s.key)
                    sid += 1
                    lid += 1
                    srows.append((sid, source_id, s.key, s.path, int(s.width), int(s.height), box,
                                  s.split, s.content_hash))
                    lrows.append((lid, sid, pts, vis, age, "import", author, t))
                    ids.append(sid)
                # sample, then its label, then the sample's pointer to it (foreign keys are
                # checked row by row: a deferred one would scan a table per insert)
                self.conn.executemany(
                    "INSERT INTO samples(id, source_id, key, path, width, height, box, split,"
                    " content_hash) VALUES (?,?,?,?,?,?,?,?,?)", srows)
                self.conn.executemany(
                    "INSERT INTO labels(id, sample_id, points, visibility, age, origin, author,"
                    " created_at) VALUES (?,?,?,?,?,?,?,?)", lrows)
                self.conn.executemany("UPDATE samples SET label_id = ? WHERE id = ?",
                                      [(r[0], r[1]) for r in lrows])
        return ids

    def sample_ids_by_key(self, source_id: int, keys: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in chunks(list(keys)):
            out.update(self.conn.execute(
                f"SELECT key, id FROM samples WHERE source_id = ? AND key IN ({marks(len(part))})",
                [source_id, *part]).fetchall())
        return out

    def sample(self, sample_id: int) -> Sample:
        row = self.conn.execute(f"SELECT {SAMPLE_COLS} {SAMPLE_FROM} WHERE s.id = ?",
                                (sample_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: no sample {sample_id}")
        return self._sample_row(row)

    def samples(self, split: str | None = None, include_excluded: bool = True,
                ids: Iterable[int] | None = None) -> list[Sample]:
        """Samples in id order (all, a split's, or the given ids')."""
        where, args = [], []
        if split is not None:
            where.append("s.split = ?")
            args.append(split)
        if not include_excluded:
            where.append("s.review_status != 'excluded'")
        cond = (" AND ".join(where)) or "1"
        if ids is not None:
            rows = self._in_chunks(f"SELECT {SAMPLE_COLS} {SAMPLE_FROM} WHERE {cond} AND "
                                   "s.id IN ({marks})", ids, *args)
            return sorted((self._sample_row(r) for r in rows), key=lambda s: s.id)
        return [self._sample_row(r) for r in self.conn.execute(
            f"SELECT {SAMPLE_COLS} {SAMPLE_FROM} WHERE {cond} ORDER BY s.id", args)]

    def iter_samples_with_labels(self, *, current: bool = True, chunk: int = 5000
                                 ) -> Iterator[tuple[Sample, Label | None]]:
        """Every sample with its current (or first) label, in id order, read ``chunk``
        samples per statement: a million samples never sit in memory at once."""
        pick = "s.label_id" if current else \
            "(SELECT min(f.id) FROM labels f WHERE f.sample_id = s.id)"
        sql = (f"SELECT {SAMPLE_COLS}, {LABEL_COLS} {SAMPLE_FROM} "
               f"LEFT JOIN labels l ON l.id = {pick} WHERE s.id > ? ORDER BY s.id LIMIT ?")
        last = 0
        while True:
            rows = self.conn.execute(sql, (last, chunk)).fetchall()
            labels = self._decode(f"labels of samples {last + 1}-", _label_chunk,
                                  [r[11:] for r in rows])
            for r, label in zip(rows, labels, strict=True):
                yield self._sample_row(r[:11]), label
            if len(rows) < chunk:
                return
            last = int(rows[-1][0])

    def iter_label_tables(self, *, current: bool = True, chunk: int = 8192
                          ) -> Iterator[LabelTable]:
        """Every sample with its current (or first) label, in id order, as column
        chunks of ``chunk`` samples (one statement each): what a bulk export reads."""
        pick = "s.label_id" if current else \
            "(SELECT min(f.id) FROM labels f WHERE f.sample_id = s.id)"
        sql = ("SELECT s.id, s.key, src.root, s.path, s.box, s.review_status, l.id, l.points, "
               f"l.visibility, l.age {SAMPLE_FROM} LEFT JOIN labels l ON l.id = {pick} "
               "WHERE s.id > ? ORDER BY s.id LIMIT ?")
        schema = self.schema
        k = 0 if schema is None or schema.task == "age" else schema.n_keypoints
        last = 0
        while True:
            rows = self.conn.execute(sql, (last, chunk)).fetchall()
            if rows:
                yield self._decode(f"labels of samples {last + 1}-{rows[-1][0]}", table_of_rows,
                                   rows, k, schema is not None and schema.task == "age")
            if len(rows) < chunk:
                return
            last = int(rows[-1][0])

    def count_samples(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM samples").fetchone()[0])

    def count_training_samples(self) -> int:
        """Samples a run would train on, before their images are read: of the train
        split, labelled and not excluded."""
        return int(self.conn.execute(
            "SELECT count(*) FROM samples WHERE split = 'train' AND label_id IS NOT NULL "
            "AND review_status != 'excluded'").fetchone()[0])

    def set_splits(self, assignment: dict[int, str]) -> None:
        for split in assignment.values():
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}")
        items = list(assignment.items())
        pace = files.Pacer(5000)
        for part in pace.parts(items):
            with pace.chunk(self):
                self.conn.executemany("UPDATE samples SET split = ? WHERE id = ?",
                                      [(v, k) for k, v in part])

    # ----------------------------------------------------------- labels

    def _insert_label(self, sample_id: int, points: np.ndarray | None,
                      visibility: np.ndarray | None, age: float | None, origin: str,
                      author: str, note: str, created_at: str | None = None) -> int:
        """Append a label version and make it current (inside a transaction)."""
        pts, vis, age_v = self._encode_label(points, visibility, age, origin)
        row = self.conn.execute("SELECT label_id FROM samples WHERE id = ?", (sample_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: no sample {sample_id}")
        cur = self.conn.execute(
            "INSERT INTO labels(sample_id, points, visibility, age, origin, author, created_at,"
            " note, replaces) VALUES (?,?,?,?,?,?,?,?,?)",
            (sample_id, pts, vis, age_v, origin, author, created_at or now_iso(), note, row[0]))
        lid = int(cur.lastrowid)
        self.conn.execute("UPDATE samples SET label_id = ? WHERE id = ?", (lid, sample_id))
        return lid

    def add_label(self, sample_id: int, *, points: np.ndarray | None = None,
                  visibility: np.ndarray | None = None, age: float | None = None,
                  origin: str = "annotator", author: str = "", note: str = "",
                  review_status: str | None = "fixed", replaces: int | None = None) -> int:
        """Append a new version of a sample's label (committed at once). By default an
        annotator's label also marks the sample 'fixed'. With ``replaces`` (the label id
        the editor showed), refused with :class:`LabelConflictError` when the current
        label is another one by now."""
        self._encode_label(points, visibility, age, origin)  # refuse bad input before locking
        with self.transaction():
            if replaces is not None:
                self._check_current(sample_id, replaces)
                self._resolve(sample_id)  # the annotator saw the sample as it is now
            lid = self._insert_label(sample_id, points, visibility, age, origin, author, note)
            if review_status is not None and origin in ("annotator", "model"):
                self._set_review(sample_id, review_status, author, note)
        return lid

    def _check_current(self, sample_id: int, expected: int) -> None:
        row = self.conn.execute(
            "SELECT l.id, l.author, l.origin, l.created_at FROM samples s "
            "LEFT JOIN labels l ON l.id = s.label_id WHERE s.id = ?", (sample_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: no sample {sample_id}")
        if row[0] != expected:
            who = row[1] or row[2]
            raise LabelConflictError(
                f"sample {sample_id} was changed by {who} at {_when(row[3])} after you "
                f"loaded it (version {row[0]}, not {expected})")

    def current_label(self, sample_id: int) -> Label:
        row = self.conn.execute(
            f"SELECT {LABEL_COLS} FROM samples s JOIN labels l ON l.id = s.label_id "
            "WHERE s.id = ?", (sample_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: sample {sample_id} has no label")
        return self._label_row(row)

    def current_labels(self, sample_ids: Iterable[int] | None = None) -> dict[int, Label]:
        """The current label of every sample (or of the given ones only)."""
        base = f"SELECT {LABEL_COLS} FROM samples s JOIN labels l ON l.id = s.label_id"
        rows = (self.conn.execute(base) if sample_ids is None
                else self._in_chunks(base + " WHERE s.id IN ({marks})", sample_ids))
        return {int(r[1]): self._label_row(r) for r in rows}

    def label_history(self, sample_id: int) -> list[Label]:
        return [self._label_row(r) for r in self.conn.execute(
            f"SELECT {LABEL_COLS} FROM labels l WHERE l.sample_id = ? ORDER BY l.id", (sample_id,))]

    def label_versions(self, sample_id: int) -> int:
        return int(self.conn.execute("SELECT count(*) FROM labels WHERE sample_id = ?",
                                     (sample_id,)).fetchone()[0])

    def original_label(self, sample_id: int) -> Label:
        """The label as first imported (before contamination or edits)."""
        row = self.conn.execute(f"SELECT {LABEL_COLS} FROM labels l WHERE l.sample_id = ? "
                                "ORDER BY l.id LIMIT 1", (sample_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: sample {sample_id} has no label")
        return self._label_row(row)

    def original_labels(self, sample_ids: Iterable[int] | None = None) -> dict[int, Label]:
        """The first label of every sample (or of the given ones), in bulk."""
        if sample_ids is None:
            rows = self.conn.execute(f"SELECT {LABEL_COLS} FROM labels l WHERE l.id IN "
                                     "(SELECT min(id) FROM labels GROUP BY sample_id)")
        else:
            rows = self._in_chunks(f"SELECT {LABEL_COLS} FROM labels l WHERE l.id IN (SELECT "
                                   "min(id) FROM labels WHERE sample_id IN ({marks}) "
                                   "GROUP BY sample_id)", sample_ids)
        return {int(r[1]): self._label_row(r) for r in rows}

    def edited_sample_ids(self) -> set[int]:
        """Samples with more than one label version (one pass over an index)."""
        return {int(r[0]) for r in self.conn.execute(
            "SELECT sample_id FROM labels GROUP BY sample_id HAVING count(*) > 1")}

    def _resolve(self, sample_id: int) -> None:
        """Close a sample's merge conflicts (inside a transaction)."""
        self.conn.execute("UPDATE conflicts SET resolved_at = ? WHERE sample_id = ? AND "
                          "resolved_at IS NULL", (now_iso(), sample_id))

    def reviewed_sample_ids(self) -> set[int]:
        """Samples whose review status is not 'unreviewed' (through the status index)."""
        others = [st for st in REVIEW_STATUSES if st != "unreviewed"]
        return {int(r[0]) for r in self.conn.execute(
            f"SELECT id FROM samples WHERE review_status IN ({marks(len(others))})", others)}

    # ----------------------------------------------------------- review

    def _set_review(self, sample_id: int, status: str, author: str, note: str,
                    created_at: str | None = None) -> None:
        if status not in REVIEW_STATUSES:
            raise ValueError(f"unknown review status {status!r}")
        t = created_at or now_iso()
        row = self.conn.execute("SELECT review_status FROM samples WHERE id = ?",
                                (sample_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: no sample {sample_id}")
        self.conn.execute(
            "INSERT INTO review_events(sample_id, status, author, created_at, note, replaces)"
            " VALUES (?,?,?,?,?,?)", (sample_id, status, author, t, note, row[0]))
        self.conn.execute(
            "UPDATE samples SET review_status = ?, reviewed_by = ?, reviewed_at = ? WHERE id = ?",
            (status, author, t, sample_id))

    def set_review(self, sample_id: int, status: str, author: str = "", note: str = "",
                   replaces: str | None = None) -> None:
        """Record a review decision (committed at once). With ``replaces`` (the status the
        editor showed), refused with :class:`LabelConflictError` when it changed since."""
        if status not in REVIEW_STATUSES:
            raise ValueError(f"unknown review status {status!r}")
        with self.transaction():
            if replaces is not None:
                row = self.conn.execute("SELECT review_status, reviewed_by, reviewed_at FROM "
                                        "samples WHERE id = ?", (sample_id,)).fetchone()
                if row is not None and row[0] != replaces:
                    raise LabelConflictError(
                        f"sample {sample_id} was marked {row[0]} by {row[1] or 'someone'} at "
                        f"{_when(row[2])} after you loaded it (not {replaces})")
                self._resolve(sample_id)
            self._set_review(sample_id, status, author, note)

    def review_history(self, sample_id: int) -> list[ReviewEvent]:
        return [self._decode(f"review event {r[0]}", _event, r) for r in self.conn.execute(
            f"SELECT {EVENT_COLS} FROM review_events WHERE sample_id = ? ORDER BY id",
            (sample_id,))]

    def last_reviews(self, sample_ids: Iterable[int]) -> dict[int, ReviewEvent]:
        """The latest review event of each given sample that has one, in bulk."""
        rows = self._in_chunks(f"SELECT {EVENT_COLS} FROM review_events WHERE id IN (SELECT "
                               "max(id) FROM review_events WHERE sample_id IN ({marks}) "
                               "GROUP BY sample_id)", sample_ids)
        return {int(r[1]): self._decode(f"review event {r[0]}", _event, r) for r in rows}

    def review_counts(self) -> dict[str, int]:
        """Samples per review status (kept by triggers: no scan)."""
        counts = dict.fromkeys(REVIEW_STATUSES, 0)
        for status, n in self.conn.execute("SELECT status, n FROM review_counts"):
            counts[str(status)] = int(n)
        return counts

    # ----------------------------------------------------------- contamination truth

    def record_contamination(self, rows: Iterable[tuple[int, str, int, bool, Sequence[int]]]
                             ) -> None:
        """rows: (sample_id, spec, seed, image_corrupted, corrupted landmark indices)."""
        params = [(s, spec, seed, int(img), json.dumps([int(i) for i in lms]))
                  for s, spec, seed, img, lms in rows]
        with self.transaction():  # joins the caller's transaction when there is one
            for part in chunks(params, CHUNK * 10):
                self.conn.executemany(
                    "INSERT OR REPLACE INTO contamination(sample_id, spec, seed, image_corrupted,"
                    " landmarks) VALUES (?,?,?,?,?)", part)

    def contamination(self) -> dict[int, tuple[bool, list[int]]]:
        def one(r: Sequence[Any]) -> tuple[bool, list[int]]:
            lms = codec.load_json(r[2], "contamination landmarks")
            if not isinstance(lms, list) or not all(isinstance(i, int) for i in lms):
                raise ValueError("not a list of landmark indices")
            return bool(r[1]), lms
        return {int(r[0]): self._decode(f"contamination of sample {r[0]}", one, r)
                for r in self.conn.execute(
                    "SELECT sample_id, image_corrupted, landmarks FROM contamination")}
