"""The project file: one SQLite database (suffix ``.gumshoe``) holding a label
schema, the imported samples, the append-only label history, review status,
training runs, per-epoch metrics and outlier scores.

Conventions (see DESIGN.md): WAL journal, foreign keys on, a busy timeout, one
connection per thread (open a second :class:`Project` on the same path in a
worker), every user edit committed in its own transaction. Tables are plain
columns plus JSON columns so the file opens in Datasette.

Landmark labels are stored as ``points`` (JSON list of ``[x, y]`` or ``null``
for a missing point, pixel coordinates of the original image) and
``visibility`` (JSON list of ints, COCO style: 0 missing, 1 labelled but
occluded, 2 visible). Age labels use the ``age`` column.

Outlier scores: ``score`` is the outlier log-odds ``log((1 - r) / r)`` for
DeepGUM (higher means more likely wrong; a sample's score is its worst
landmark's) or a method's own residual score for baselines; ``outlier_prob`` is
``1 - r`` where the method has one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

SUFFIX = ".gumshoe"
SCHEMA_VERSION = 1
APP_ID = 0x47554D53  # "GUMS", stored in PRAGMA application_id
BUSY_TIMEOUT_MS = 10_000

REVIEW_STATUSES = ("unreviewed", "confirmed", "fixed", "excluded")
LABEL_ORIGINS = ("import", "annotator", "model", "noise")
SPLITS = ("train", "val", "test")


class ProjectError(Exception):
    """A project file that cannot be opened or an operation it refuses."""


class FutureProjectError(ProjectError):
    """The file was written by a newer Gumshoe (higher schema version)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class LabelSchema:
    """What a project's labels mean: ``task`` is ``landmarks`` or ``age``."""

    task: str
    name: str = ""
    keypoints: tuple[str, ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    # the subject faces the camera upright (faces): the first keypoint of each flip pair
    # is on the image's left (the subject's right), which tells left from right even in
    # a set where half the labels have their sides exchanged
    frontal: bool = False

    def __post_init__(self) -> None:
        if self.task not in ("landmarks", "age"):
            raise ValueError(f"unknown task {self.task!r} (expected 'landmarks' or 'age')")
        if self.task == "landmarks" and not self.keypoints:
            raise ValueError("a landmarks schema needs named keypoints")

    @property
    def n_keypoints(self) -> int:
        return len(self.keypoints)

    def flip_permutation(self) -> np.ndarray:
        """Index array mapping each keypoint to its mirror partner (its own inverse).
        Pairs that share a keypoint or name one out of range are refused."""
        perm = np.arange(self.n_keypoints)
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            if not (0 <= a < self.n_keypoints and 0 <= b < self.n_keypoints) or a == b \
                    or a in seen or b in seen:
                raise ValueError(f"schema {self.name or self.task!r}: flip pair ({a}, {b}) is out of "
                                 "range or shares a keypoint with another pair")
            seen.update((a, b))
            perm[a], perm[b] = b, a
        return perm

    def to_json(self) -> str:
        return json.dumps(
            {
                "task": self.task,
                "name": self.name,
                "keypoints": list(self.keypoints),
                "flip_pairs": [list(p) for p in self.flip_pairs],
                "skeleton": [list(p) for p in self.skeleton],
                "frontal": self.frontal,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LabelSchema:
        d = json.loads(text)
        return cls(
            task=d["task"],
            name=d.get("name", ""),
            keypoints=tuple(d.get("keypoints", ())),
            flip_pairs=tuple(tuple(p) for p in d.get("flip_pairs", ())),
            skeleton=tuple(tuple(p) for p in d.get("skeleton", ())),
            frontal=bool(d.get("frontal", False)),
        )


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Sample:
    id: int
    source_id: int
    key: str
    path: str  # relative to the source root, forward slashes
    width: int
    height: int
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in image pixels
    split: str
    content_hash: str
    review_status: str
    root: str  # the source root (absolute)

    @property
    def image_path(self) -> Path:
        return Path(self.root) / self.path


@dataclass(frozen=True)
class Label:
    id: int
    sample_id: int
    points: np.ndarray | None  # (K, 2) float64, NaN where missing
    visibility: np.ndarray | None  # (K,) int8
    age: float | None
    origin: str
    author: str
    created_at: str
    note: str

    @property
    def targets(self) -> np.ndarray:
        """Flat float64 target vector (2K for landmarks, 1 for age)."""
        if self.points is not None:
            return self.points.reshape(-1)
        return np.array([np.nan if self.age is None else self.age])


@dataclass(frozen=True)
class NewSample:
    """A sample as a reader produces it, before it has an id."""

    key: str
    path: str
    width: int
    height: int
    content_hash: str
    points: np.ndarray | None = None
    visibility: np.ndarray | None = None
    age: float | None = None
    box: tuple[float, float, float, float] | None = None
    split: str = "train"


@dataclass(frozen=True)
class ScoreRow:
    """One sample's result in a run, as the trainer writes it."""

    sample_id: int
    score: float
    outlier_prob: float | None = None
    landmark_scores: Sequence[float] | None = None  # per landmark, same convention as score
    landmark_probs: Sequence[float] | None = None
    prediction: Sequence[float] | None = None  # flat: 2K image-pixel coords, or [age]
    prediction_std: Sequence[float] | None = None
    issue: str | None = None  # the likely kind of error (core.issues.ISSUES), or None
    statistic: float | None = None  # the method's raw statistic of the sample


# --------------------------------------------------------------------------- encoding


def encode_points(points: np.ndarray | None) -> str | None:
    if points is None:
        return None
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out: list[list[float] | None] = []
    for x, y in pts:
        if math.isfinite(x) and math.isfinite(y):
            out.append([round(float(x), 4), round(float(y), 4)])
        else:
            out.append(None)
    return json.dumps(out)


def decode_points(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    raw = json.loads(text)
    arr = np.full((len(raw), 2), np.nan)
    for i, p in enumerate(raw):
        if p is not None:
            arr[i] = p
    return arr


def _finite_list(values: Iterable[float] | None) -> str | None:
    if values is None:
        return None
    return json.dumps([None if not math.isfinite(float(v)) else float(v) for v in values])


def _decode_list(text: str | None) -> list[float] | None:
    if text is None:
        return None
    return [math.nan if v is None else v for v in json.loads(text)]


# --------------------------------------------------------------------------- migrations

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    format TEXT NOT NULL,
    task TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'importing',  -- importing | complete
    skipped INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    UNIQUE (root, format, task)
);
CREATE TABLE import_errors (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (source_id, path, reason)
);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    box TEXT,
    split TEXT NOT NULL DEFAULT 'train',
    content_hash TEXT NOT NULL,
    review_status TEXT NOT NULL DEFAULT 'unreviewed',
    reviewed_by TEXT,
    reviewed_at TEXT,
    UNIQUE (source_id, key)
);
CREATE INDEX samples_status ON samples(review_status);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    points TEXT,
    visibility TEXT,
    age REAL,
    origin TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX labels_sample ON labels(sample_id, id);
CREATE TABLE review_events (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    status TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX review_events_sample ON review_events(sample_id, id);
CREATE TABLE contamination (
    sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
    spec TEXT NOT NULL,
    seed INTEGER NOT NULL,
    image_corrupted INTEGER NOT NULL,
    landmarks TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    method TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'running',  -- running | paused | stopped | finished | failed
    device TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    checkpoint TEXT,
    state TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    epoch INTEGER NOT NULL,
    train_loss REAL,
    val_error REAL,
    inlier_fraction REAL,
    images_per_s REAL,
    seconds REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE scores (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    score REAL NOT NULL,
    outlier_prob REAL,
    landmark_scores TEXT,
    landmark_probs TEXT,
    prediction TEXT,
    prediction_std TEXT,
    PRIMARY KEY (run_id, sample_id)
);
CREATE INDEX scores_rank ON scores(run_id, score DESC);
"""

# version -> SQL that brings a file from version-1 to version
MIGRATIONS: dict[int, str] = {1: _V1}


# --------------------------------------------------------------------------- project


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Project:
    """An open project file. Not thread-safe: open one per thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._schema: LabelSchema | None = None

    # ----------------------------------------------------------- open / create

    @classmethod
    def create(cls, path: str | os.PathLike[str], schema: LabelSchema | None = None) -> Project:
        p = Path(path)
        if p.exists():
            raise ProjectError(f"{p}: already exists")
        p.parent.mkdir(parents=True, exist_ok=True)
        proj = cls._open(p, create=True)
        if schema is not None:
            proj.set_schema(schema)
        return proj

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Project:
        p = Path(path)
        if not p.exists():
            raise ProjectError(f"{p}: no such project file")
        return cls._open(p, create=False)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str]) -> Project:
        p = Path(path)
        return cls.open(p) if p.exists() else cls.create(p)

    @classmethod
    def _open(cls, path: Path, create: bool) -> Project:
        try:
            conn = connect(path)
        except sqlite3.Error as exc:
            raise ProjectError(f"{path}: cannot open ({exc})") from None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ProjectError(f"{path}: not a Gumshoe project ({exc})") from None
        if has_tables and app_id != APP_ID:
            conn.close()
            raise ProjectError(f"{path}: an SQLite file, but not a Gumshoe project")
        # a file with no tables (e.g. left by a create that was killed) is set up afresh
        if version > SCHEMA_VERSION:
            conn.close()
            raise FutureProjectError(
                f"{path}: written by a newer Gumshoe (project schema v{version}; this "
                f"version reads up to v{SCHEMA_VERSION}). Upgrade Gumshoe to open it."
            )
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            conn.close()
            raise ProjectError(f"{path}: cannot open for writing ({exc})") from None
        if mode.lower() != "wal":  # pragma: no cover - e.g. a read-only medium
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = NORMAL")
        proj = cls(path, conn)
        proj._migrate(version)
        return proj

    def _migrate(self, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            # re-read inside the write lock: another process may have migrated
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        self.conn.execute(stmt)
                self.conn.execute(f"PRAGMA user_version = {v}")
            if version == 0:
                self.conn.execute(f"PRAGMA application_id = {APP_ID}")
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('created_at', ?)", (now_iso(),)
                )
            self.conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction: all of it is committed or none."""
        if self.conn.in_transaction:  # nested: join the outer one
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    @property
    def cache_dir(self) -> Path:
        """Folder beside the project file that holds derived data (image cache, checkpoints)."""
        return self.path.with_name(self.path.name + "-cache")

    # ----------------------------------------------------------- meta / schema

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def schema(self) -> LabelSchema | None:
        if self._schema is None:
            text = self.meta("label_schema")
            self._schema = None if text is None else LabelSchema.from_json(text)
        return self._schema

    def set_schema(self, schema: LabelSchema) -> None:
        """Set the label schema; a project holds one, so a different one is refused."""
        current = self.schema
        if current is not None:
            if current != schema:
                raise ProjectError(
                    f"{self.path}: project holds {current.task} labels"
                    f"{' (' + current.name + ')' if current.name else ''}; "
                    f"cannot add {schema.task} labels{' (' + schema.name + ')' if schema.name else ''}"
                )
            return
        self.set_meta("label_schema", schema.to_json())
        self._schema = schema

    # ----------------------------------------------------------- sources

    def add_source(self, root: str | os.PathLike[str], fmt: str, task: str,
                   options: dict[str, Any] | None = None) -> int:
        """The id of the source (root, format, task), created if new."""
        root_s = str(Path(root).resolve())
        with self.transaction():
            row = self.conn.execute(
                "SELECT id FROM sources WHERE root = ? AND format = ? AND task = ?",
                (root_s, fmt, task),
            ).fetchone()
            if row:
                return int(row[0])
            cur = self.conn.execute(
                "INSERT INTO sources(root, format, task, options, created_at) VALUES (?,?,?,?,?)",
                (root_s, fmt, task, json.dumps(options or {}), now_iso()),
            )
            return int(cur.lastrowid)

    def sources(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM sources ORDER BY id"))

    def complete_source(self, source_id: int) -> None:
        with self.transaction():
            n = self.conn.execute(
                "SELECT count(*) FROM import_errors WHERE source_id = ?", (source_id,)
            ).fetchone()[0]
            self.conn.execute(
                "UPDATE sources SET status = 'complete', skipped = ?, completed_at = ? WHERE id = ?",
                (n, now_iso(), source_id),
            )

    def record_skips(self, source_id: int, skips: Iterable[tuple[str, str]]) -> None:
        """Remember skipped items (path, reason) of an import; repeats are ignored."""
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO import_errors(source_id, path, reason, created_at) "
                "VALUES (?, ?, ?, ?)",
                [(source_id, p, r, now_iso()) for p, r in skips],
            )

    def import_errors(self, source_id: int | None = None) -> list[dict[str, Any]]:
        if source_id is None:
            return list(self.db.query("SELECT * FROM import_errors ORDER BY id"))
        return list(self.db.query(
            "SELECT * FROM import_errors WHERE source_id = ? ORDER BY id", [source_id]))

    def skipped_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM import_errors").fetchone()[0])

    # ----------------------------------------------------------- samples

    def existing_keys(self, source_id: int) -> set[str]:
        return {r[0] for r in self.conn.execute(
            "SELECT key FROM samples WHERE source_id = ?", (source_id,))}

    def add_samples(self, source_id: int, samples: Sequence[NewSample],
                    author: str = "import") -> list[int]:
        """Insert whole samples with their first label in one transaction.
        Samples whose key the source already holds are left alone."""
        ids: list[int] = []
        t = now_iso()
        with self.transaction():
            for s in samples:
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO samples(source_id, key, path, width, height, box, split,"
                    " content_hash) VALUES (?,?,?,?,?,?,?,?)",
                    (source_id, s.key, s.path, int(s.width), int(s.height),
                     None if s.box is None else json.dumps([float(v) for v in s.box]),
                     s.split, s.content_hash),
                )
                if cur.rowcount == 0:
                    continue
                sid = int(cur.lastrowid)
                self._insert_label(sid, s.points, s.visibility, s.age, "import", author, "", t)
                ids.append(sid)
        return ids

    def sample_ids_by_key(self, source_id: int, keys: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i:i + 500])
            out.update(self.conn.execute(
                f"SELECT key, id FROM samples WHERE source_id = ? AND key IN ({','.join('?' * len(chunk))})",
                [source_id, *chunk]).fetchall())
        return out

    _SAMPLE_SQL = (
        "SELECT s.id, s.source_id, s.key, s.path, s.width, s.height, s.box, s.split,"
        " s.content_hash, s.review_status, src.root FROM samples s"
        " JOIN sources src ON src.id = s.source_id"
    )

    @staticmethod
    def _sample_from_row(r: Sequence[Any]) -> Sample:
        box = None if r[6] is None else tuple(json.loads(r[6]))
        return Sample(int(r[0]), int(r[1]), r[2], r[3], int(r[4]), int(r[5]), box, r[7], r[8],
                      r[9], r[10])

    def sample(self, sample_id: int) -> Sample:
        row = self.conn.execute(self._SAMPLE_SQL + " WHERE s.id = ?", (sample_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: no sample {sample_id}")
        return self._sample_from_row(row)

    def samples(self, split: str | None = None, include_excluded: bool = True) -> list[Sample]:
        sql, args = self._SAMPLE_SQL, []
        where = []
        if split is not None:
            where.append("s.split = ?")
            args.append(split)
        if not include_excluded:
            where.append("s.review_status != 'excluded'")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.id"
        return [self._sample_from_row(r) for r in self.conn.execute(sql, args)]

    def count_samples(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM samples").fetchone()[0])

    def set_splits(self, assignment: dict[int, str]) -> None:
        for split in assignment.values():
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}")
        with self.transaction():
            self.conn.executemany("UPDATE samples SET split = ? WHERE id = ?",
                                  [(v, k) for k, v in assignment.items()])

    # ----------------------------------------------------------- labels

    def _insert_label(self, sample_id: int, points: np.ndarray | None,
                      visibility: np.ndarray | None, age: float | None, origin: str,
                      author: str, note: str, created_at: str | None = None) -> int:
        if origin not in LABEL_ORIGINS:
            raise ValueError(f"unknown label origin {origin!r}")
        if age is not None and not math.isfinite(float(age)):
            raise ValueError("age must be a finite number")
        vis = None
        if points is not None:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            if visibility is None:
                visibility = np.where(np.isfinite(pts).all(axis=1), 2, 0)
            vis = json.dumps([int(v) for v in np.asarray(visibility).reshape(-1)])
        cur = self.conn.execute(
            "INSERT INTO labels(sample_id, points, visibility, age, origin, author, created_at, note)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (sample_id, encode_points(points), vis, None if age is None else float(age), origin,
             author, created_at or now_iso(), note),
        )
        return int(cur.lastrowid)

    def add_label(self, sample_id: int, *, points: np.ndarray | None = None,
                  visibility: np.ndarray | None = None, age: float | None = None,
                  origin: str = "annotator", author: str = "", note: str = "",
                  review_status: str | None = "fixed") -> int:
        """Append a new version of a sample's label (committed at once). By default an
        annotator's label also marks the sample 'fixed'."""
        with self.transaction():
            lid = self._insert_label(sample_id, points, visibility, age, origin, author, note)
            if review_status is not None and origin in ("annotator", "model"):
                self._set_review(sample_id, review_status, author, note)
        return lid

    @staticmethod
    def _label_from_row(r: Sequence[Any]) -> Label:
        vis = None if r[3] is None else np.asarray(json.loads(r[3]), dtype=np.int8)
        return Label(int(r[0]), int(r[1]), decode_points(r[2]), vis, r[4], r[5], r[6], r[7], r[8])

    _LABEL_COLS = "id, sample_id, points, visibility, age, origin, author, created_at, note"

    def current_label(self, sample_id: int) -> Label:
        row = self.conn.execute(
            f"SELECT {self._LABEL_COLS} FROM labels WHERE sample_id = ? ORDER BY id DESC LIMIT 1",
            (sample_id,),
        ).fetchone()
        if row is None:
            raise ProjectError(f"{self.path}: sample {sample_id} has no label")
        return self._label_from_row(row)

    def current_labels(self, sample_ids: Iterable[int] | None = None) -> dict[int, Label]:
        """The latest label of every sample (or of the given ones), in one query."""
        sql = (f"SELECT {self._LABEL_COLS} FROM labels WHERE id IN "
               "(SELECT max(id) FROM labels GROUP BY sample_id)")
        out = {}
        for r in self.conn.execute(sql):
            out[int(r[1])] = self._label_from_row(r)
        if sample_ids is not None:
            wanted = set(sample_ids)
            out = {k: v for k, v in out.items() if k in wanted}
        return out

    def label_history(self, sample_id: int) -> list[Label]:
        return [self._label_from_row(r) for r in self.conn.execute(
            f"SELECT {self._LABEL_COLS} FROM labels WHERE sample_id = ? ORDER BY id", (sample_id,))]

    def original_label(self, sample_id: int) -> Label:
        """The label as first imported (before contamination or edits)."""
        return self.label_history(sample_id)[0]

    # ----------------------------------------------------------- review

    def _set_review(self, sample_id: int, status: str, author: str, note: str) -> None:
        if status not in REVIEW_STATUSES:
            raise ValueError(f"unknown review status {status!r}")
        t = now_iso()
        self.conn.execute(
            "INSERT INTO review_events(sample_id, status, author, created_at, note) VALUES (?,?,?,?,?)",
            (sample_id, status, author, t, note),
        )
        self.conn.execute(
            "UPDATE samples SET review_status = ?, reviewed_by = ?, reviewed_at = ? WHERE id = ?",
            (status, author, t, sample_id),
        )

    def set_review(self, sample_id: int, status: str, author: str = "", note: str = "") -> None:
        """Record a review decision (committed at once)."""
        with self.transaction():
            self._set_review(sample_id, status, author, note)

    def review_history(self, sample_id: int) -> list[dict[str, Any]]:
        return list(self.db.query(
            "SELECT * FROM review_events WHERE sample_id = ? ORDER BY id", [sample_id]))

    def review_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(REVIEW_STATUSES, 0)
        for status, n in self.conn.execute(
                "SELECT review_status, count(*) FROM samples GROUP BY review_status"):
            counts[status] = int(n)
        return counts

    # ----------------------------------------------------------- contamination truth

    def record_contamination(self, rows: Iterable[tuple[int, str, int, bool, Sequence[int]]]) -> None:
        """rows: (sample_id, spec, seed, image_corrupted, corrupted landmark indices)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO contamination(sample_id, spec, seed, image_corrupted, landmarks)"
                " VALUES (?,?,?,?,?)",
                [(s, spec, seed, int(img), json.dumps([int(i) for i in lms]))
                 for s, spec, seed, img, lms in rows],
            )

    def contamination(self) -> dict[int, tuple[bool, list[int]]]:
        return {int(r[0]): (bool(r[1]), json.loads(r[2])) for r in self.conn.execute(
            "SELECT sample_id, image_corrupted, landmarks FROM contamination")}

    # ----------------------------------------------------------- runs, epochs, scores

    def create_run(self, method: str, params: dict[str, Any] | None = None,
                   device: str = "") -> int:
        t = now_iso()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs(method, params, device, host, pid, started_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (method, json.dumps(params or {}), device, os.uname().nodename, os.getpid(), t, t),
            )
            return int(cur.lastrowid)

    _RUN_FIELDS = frozenset({"status", "device", "finished_at", "checkpoint", "state", "message",
                             "params", "pid", "host"})

    def update_run(self, run_id: int, **fields: Any) -> None:
        bad = set(fields) - self._RUN_FIELDS
        if bad:
            raise ValueError(f"unknown run fields {sorted(bad)}")
        for k in ("state", "params"):
            if k in fields and not isinstance(fields[k], str):
                fields[k] = json.dumps(fields[k])
        fields["updated_at"] = now_iso()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.conn.execute(f"UPDATE runs SET {cols} WHERE id = ?", [*fields.values(), run_id])

    def run(self, run_id: int) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise ProjectError(f"{self.path}: no run {run_id}")
        r = rows[0]
        r["params"] = json.loads(r["params"])
        r["state"] = json.loads(r["state"])
        return r

    def runs(self) -> list[dict[str, Any]]:
        return [self.run(int(r[0])) for r in self.conn.execute("SELECT id FROM runs ORDER BY id")]

    def add_epoch(self, run_id: int, epoch: int, *, train_loss: float | None = None,
                  val_error: float | None = None, inlier_fraction: float | None = None,
                  images_per_s: float | None = None, seconds: float | None = None,
                  metrics: dict[str, Any] | None = None) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO epochs(run_id, epoch, train_loss, val_error, inlier_fraction,"
                " images_per_s, seconds, metrics, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, epoch, train_loss, val_error, inlier_fraction, images_per_s, seconds,
                 json.dumps(metrics or {}), now_iso()),
            )
            self.conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now_iso(), run_id))

    def epochs(self, run_id: int, after: int = -1) -> list[dict[str, Any]]:
        rows = list(self.db.query(
            "SELECT * FROM epochs WHERE run_id = ? AND epoch > ? ORDER BY epoch", [run_id, after]))
        for r in rows:
            r["metrics"] = json.loads(r["metrics"])
        return rows

    def write_scores(self, run_id: int, rows: Iterable[ScoreRow]) -> None:
        """Write (replace) a run's scores in one transaction."""
        enc = _finite_list
        # encode before taking the write lock: editors in other threads wait on it
        params = [(run_id, r.sample_id, float(r.score), r.outlier_prob, enc(r.landmark_scores),
                   enc(r.landmark_probs), enc(r.prediction), enc(r.prediction_std)) for r in rows]
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO scores(run_id, sample_id, score, outlier_prob, landmark_scores,"
                " landmark_probs, prediction, prediction_std) VALUES (?,?,?,?,?,?,?,?)", params)
            self.conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now_iso(), run_id))

    def scored_run(self) -> int | None:
        """The latest run that has written scores (what the review queue ranks by)."""
        row = self.conn.execute(
            "SELECT run_id FROM scores ORDER BY run_id DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def scores(self, run_id: int) -> dict[int, dict[str, Any]]:
        out = {}
        for r in self.db.query("SELECT * FROM scores WHERE run_id = ?", [run_id]):
            for k in ("landmark_scores", "landmark_probs", "prediction", "prediction_std"):
                r[k] = _decode_list(r[k])
            out[int(r["sample_id"])] = r
        return out

    def sample_score(self, sample_id: int, run_id: int | None = None) -> dict[str, Any] | None:
        run_id = self.scored_run() if run_id is None else run_id
        if run_id is None:
            return None
        rows = list(self.db.query(
            "SELECT * FROM scores WHERE run_id = ? AND sample_id = ?", [run_id, sample_id]))
        if not rows:
            return None
        r = rows[0]
        for k in ("landmark_scores", "landmark_probs", "prediction", "prediction_std"):
            r[k] = _decode_list(r[k])
        return r

    # ----------------------------------------------------------- queue

    def queue(self, *, run_id: int | None = None, statuses: Sequence[str] | None = None,
              min_score: float | None = None, max_score: float | None = None,
              split: str | None = None, search: str | None = None,
              limit: int | None = None, offset: int = 0) -> list[tuple[Any, ...]]:
        """Samples ranked by outlier score (highest first; unscored last, by id).
        Rows: (sample_id, path, split, review_status, score, outlier_prob)."""
        sql, args = self._queue_sql(run_id, statuses, min_score, max_score, split, search)
        sql = ("SELECT s.id, s.path, s.split, s.review_status, sc.score, sc.outlier_prob " + sql +
               " ORDER BY sc.score IS NULL, sc.score DESC, s.id")
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, offset]
        return [tuple(r) for r in self.conn.execute(sql, args)]

    def queue_count(self, *, run_id: int | None = None, statuses: Sequence[str] | None = None,
                    min_score: float | None = None, max_score: float | None = None,
                    split: str | None = None, search: str | None = None) -> int:
        sql, args = self._queue_sql(run_id, statuses, min_score, max_score, split, search)
        return int(self.conn.execute("SELECT count(*) " + sql, args).fetchone()[0])

    def _queue_sql(self, run_id: int | None, statuses: Sequence[str] | None,
                   min_score: float | None, max_score: float | None, split: str | None,
                   search: str | None) -> tuple[str, list[Any]]:
        if run_id is None:
            run_id = self.scored_run()
        args: list[Any] = [-1 if run_id is None else run_id]
        sql = "FROM samples s LEFT JOIN scores sc ON sc.sample_id = s.id AND sc.run_id = ?"
        where = []
        if statuses:
            where.append(f"s.review_status IN ({','.join('?' * len(statuses))})")
            args += list(statuses)
        if min_score is not None:
            where.append("sc.score >= ?")
            args.append(min_score)
        if max_score is not None:
            where.append("sc.score <= ?")
            args.append(max_score)
        if split:
            where.append("s.split = ?")
            args.append(split)
        if search:
            where.append("s.path LIKE ? ESCAPE '\\'")
            esc = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{esc}%")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql, args

    # ----------------------------------------------------------- summary

    def info(self) -> dict[str, Any]:
        schema = self.schema
        task = None if schema is None else schema.task
        age_min = age_max = None
        if task == "age":
            row = self.conn.execute(
                "SELECT min(age), max(age) FROM labels WHERE id IN "
                "(SELECT max(id) FROM labels GROUP BY sample_id)").fetchone()
            age_min, age_max = row
        return {
            "path": str(self.path),
            "schema_version": SCHEMA_VERSION,
            "samples": self.count_samples(),
            "task": task,
            "schema": None if schema is None else schema.name,
            "keypoints": 0 if schema is None else schema.n_keypoints,
            "age_min": age_min,
            "age_max": age_max,
            "skipped": self.skipped_count(),
            "sources": len(self.sources()),
            "splits": dict(self.conn.execute("SELECT split, count(*) FROM samples GROUP BY split").fetchall()),
            "review": self.review_counts(),
            "runs": int(self.conn.execute("SELECT count(*) FROM runs").fetchone()[0]),
            "labels": int(self.conn.execute("SELECT count(*) FROM labels").fetchone()[0]),
        }

