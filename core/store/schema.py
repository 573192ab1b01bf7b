"""The tables, indexes, triggers and views of each schema version, and the check
that a file holds exactly what this version writes (a crafted file with an extra
trigger, a view in place of a table or a column of another type is refused on
open, before anything reads it).

Schema v2 (this version):

* ``samples.label_id`` points at the current label (compare-and-append edits move
  it); ``labels.replaces`` names the version an edit was written over.
* Per-landmark arrays are little-endian BLOBs (see :mod:`core.store.codec`); the
  views ``label_points`` and ``score_arrays`` expand them for Datasette.
* A run's scores are a *score set*: written in short transactions, then published
  by pointing ``runs.score_set`` at it in one tiny one, so readers see all of a
  run's scores or none of them. ``scores`` holds one row per sample (key: set,
  sample); ``score_ranks`` the same set's ranking columns ordered by score (key:
  set, score, sample). Both are written in their key order, so a million rows
  are appended, not inserted at random.
* ``review_counts`` is kept by triggers (the queue shows the counts after every edit).
* ``lease``: the one trainer of the project; ``conflicts``: what a merge found.
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache

from core.store.codec import sql_float, sql_uint

SCHEMA_VERSION = 2
APP_ID = 0x47554D53  # "GUMS", stored in PRAGMA application_id
PAGE_SIZE = 8192  # 1 kB score rows pack 9 to a page (4 KB pages waste a fifth)

V1 = """
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

V2_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
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
) STRICT;
CREATE TABLE import_errors (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (source_id, path, reason)
) STRICT;
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    box TEXT,  -- JSON [x0, y0, x1, y1] or NULL
    split TEXT NOT NULL DEFAULT 'train',
    content_hash TEXT NOT NULL,
    review_status TEXT NOT NULL DEFAULT 'unreviewed',
    reviewed_by TEXT,
    reviewed_at TEXT,
    label_id INTEGER REFERENCES labels(id),  -- the current label
    UNIQUE (source_id, key)
) STRICT;
CREATE INDEX samples_status ON samples(review_status);
CREATE INDEX samples_split ON samples(split);
CREATE INDEX samples_path ON samples(path);
CREATE INDEX samples_reviewed ON samples(reviewed_at);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    points BLOB,  -- int32 LE (x, y) per landmark in 1/10000 px, -2^31 where missing
    visibility BLOB,  -- uint8 per landmark; NULL: 2 where present, 0 where missing
    age REAL,
    origin TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    replaces INTEGER REFERENCES labels(id)  -- the version this one was written over
) STRICT;
CREATE INDEX labels_sample ON labels(sample_id, id);
CREATE TABLE review_events (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    status TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    replaces TEXT  -- the status this one was written over
) STRICT;
CREATE INDEX review_events_sample ON review_events(sample_id, id);
CREATE TABLE review_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) STRICT;
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    kind TEXT NOT NULL,  -- label | review
    ours INTEGER NOT NULL,
    theirs INTEGER NOT NULL,
    kept INTEGER NOT NULL,
    merged_from TEXT NOT NULL,
    created_at TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (sample_id, kind, ours, theirs)
) STRICT;
CREATE INDEX conflicts_open ON conflicts(sample_id) WHERE resolved_at IS NULL;
CREATE TABLE contamination (
    sample_id INTEGER PRIMARY KEY REFERENCES samples(id),
    spec TEXT NOT NULL,
    seed INTEGER NOT NULL,
    image_corrupted INTEGER NOT NULL,
    landmarks TEXT NOT NULL DEFAULT '[]'
) STRICT;
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
    message TEXT NOT NULL DEFAULT '',
    score_set INTEGER REFERENCES score_sets(id)  -- the published scores
) STRICT;
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
) STRICT;
CREATE TABLE score_sets (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    epoch INTEGER,
    rows INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'writing',  -- writing | published | retired
    prob_from_score INTEGER NOT NULL DEFAULT 0,  -- 1: every outlier_prob is sigmoid(score)
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX score_sets_run ON score_sets(run_id);
CREATE TABLE scores (
    set_id INTEGER NOT NULL REFERENCES score_sets(id),
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    score REAL NOT NULL,
    outlier_prob REAL,
    statistic REAL,
    issue TEXT,
    worst_landmark INTEGER,
    landmark_scores BLOB,  -- float32 LE
    landmark_probs BLOB,  -- float32 LE; NULL: sigmoid(landmark_scores) where outlier_prob is set
    prediction BLOB,  -- uint16 LE steps: value = prediction_lo + q * prediction_step, 65535 missing
    prediction_lo REAL,
    prediction_step REAL,
    prediction_std BLOB,  -- float16 LE
    PRIMARY KEY (set_id, sample_id)
) STRICT;
CREATE TABLE score_ranks (
    set_id INTEGER NOT NULL,
    score REAL NOT NULL,
    sample_id INTEGER NOT NULL,
    outlier_prob REAL,
    worst_landmark INTEGER,
    issue TEXT,
    PRIMARY KEY (set_id, score DESC, sample_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    run_id INTEGER,
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    process_start TEXT,
    token TEXT NOT NULL,
    since TEXT NOT NULL,
    heartbeat TEXT NOT NULL,
    heartbeat_unix REAL NOT NULL
) STRICT;
"""

V2_TRIGGERS = """
CREATE TRIGGER review_counts_insert AFTER INSERT ON samples BEGIN
    INSERT INTO review_counts(status, n) VALUES (NEW.review_status, 1)
        ON CONFLICT(status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER review_counts_update AFTER UPDATE OF review_status ON samples
        WHEN OLD.review_status IS NOT NEW.review_status BEGIN
    UPDATE review_counts SET n = n - 1 WHERE status = OLD.review_status;
    INSERT INTO review_counts(status, n) VALUES (NEW.review_status, 1)
        ON CONFLICT(status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER review_counts_delete AFTER DELETE ON samples BEGIN
    UPDATE review_counts SET n = n - 1 WHERE status = OLD.review_status;
END;
"""


def _views() -> str:
    f32 = sql_float("a.u", 4)
    f16 = sql_float("a.u", 2)
    return f"""
CREATE VIEW label_points AS
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4095),
a AS (SELECT l.id AS label_id, l.sample_id, n.i, l.points AS blob, l.visibility,
             {sql_uint('l.points', '(2 * n.i)', 4)} AS ux,
             {sql_uint('l.points', '(2 * n.i + 1)', 4)} AS uy
      FROM labels l JOIN n ON n.i < length(l.points) / 8)
SELECT label_id, sample_id, i AS landmark,
       CASE WHEN ux = 2147483648 THEN NULL
            ELSE (CASE WHEN ux > 2147483648 THEN ux - 4294967296 ELSE ux END) / 10000.0 END AS x,
       CASE WHEN uy = 2147483648 THEN NULL
            ELSE (CASE WHEN uy > 2147483648 THEN uy - 4294967296 ELSE uy END) / 10000.0 END AS y,
       CASE WHEN visibility IS NOT NULL THEN {sql_uint('visibility', 'i', 1)}
            WHEN ux = 2147483648 THEN 0 ELSE 2 END AS visibility
FROM a;
CREATE VIEW run_scores AS
SELECT ss.run_id, sc.sample_id, sc.score, sc.outlier_prob, sc.statistic, sc.issue,
       sc.worst_landmark, ss.id AS set_id
FROM runs r JOIN score_sets ss ON ss.id = r.score_set JOIN scores sc ON sc.set_id = ss.id;
CREATE VIEW score_arrays AS
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 8191),
cols AS (
    SELECT ss.run_id, sc.sample_id, 'landmark_scores' AS array, 4 AS width, sc.landmark_scores AS blob,
           NULL AS lo, NULL AS step
        FROM runs r JOIN score_sets ss ON ss.id = r.score_set JOIN scores sc ON sc.set_id = ss.id
    UNION ALL
    SELECT ss.run_id, sc.sample_id, 'landmark_probs', 4, sc.landmark_probs, NULL, NULL
        FROM runs r JOIN score_sets ss ON ss.id = r.score_set JOIN scores sc ON sc.set_id = ss.id
    UNION ALL
    SELECT ss.run_id, sc.sample_id, 'prediction', 2, sc.prediction, sc.prediction_lo,
           sc.prediction_step
        FROM runs r JOIN score_sets ss ON ss.id = r.score_set JOIN scores sc ON sc.set_id = ss.id
    UNION ALL
    SELECT ss.run_id, sc.sample_id, 'prediction_std', 2, sc.prediction_std, NULL, NULL
        FROM runs r JOIN score_sets ss ON ss.id = r.score_set JOIN scores sc ON sc.set_id = ss.id
),
a AS (SELECT c.run_id, c.sample_id, c.array, n.i, c.blob, c.lo, c.step,
             CASE WHEN c.width = 4 THEN {sql_uint('c.blob', 'n.i', 4)}
                  ELSE {sql_uint('c.blob', 'n.i', 2)} END AS u
      FROM cols c JOIN n ON c.blob IS NOT NULL AND n.i < length(c.blob) / c.width)
SELECT run_id, sample_id, array, i,
       CASE array WHEN 'prediction' THEN (CASE WHEN a.u = 65535 THEN NULL ELSE a.lo + a.u * a.step END)
                  WHEN 'prediction_std' THEN {f16}
                  ELSE {f32} END AS value
FROM a;
"""


def current_ddl() -> str:
    return V2_TABLES + V2_TRIGGERS + _views()


DDL_BY_VERSION = {1: V1}  # the current version's comes from current_ddl()


def ddl(version: int) -> str:
    return current_ddl() if version == SCHEMA_VERSION else DDL_BY_VERSION[version]


# --------------------------------------------------------------------------- structure check


def _norm(sql: str | None) -> str:
    if sql is None:
        return ""
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"\s+", " ", sql).strip()


def structure(conn: sqlite3.Connection) -> dict[str, object]:
    """Everything about the file's schema that matters to this code: every object's
    type, and per table its columns, strictness, rowid, foreign keys and indexes; the
    text of triggers and views."""
    out: dict[str, object] = {}
    objects = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema "
        "WHERE name NOT LIKE 'sqlite_stat%' AND name != 'sqlite_sequence' ORDER BY name").fetchall()
    for kind, name, tbl, sql in objects:
        key = f"{kind} {name}"
        if kind == "table":
            flags = conn.execute("SELECT strict, wr FROM pragma_table_list WHERE name = ? "
                                 "AND schema = 'main'", (name,)).fetchone()
            out[key] = (
                tuple(flags or ()),
                tuple(conn.execute(f"SELECT * FROM pragma_table_xinfo('{_quote(name)}')")),
                tuple(conn.execute(f"SELECT * FROM pragma_foreign_key_list('{_quote(name)}')")),
            )
        elif kind == "index":
            info = conn.execute(f"SELECT * FROM pragma_index_xinfo('{_quote(name)}')").fetchall()
            unique = conn.execute(f"SELECT \"unique\", origin, partial FROM pragma_index_list("
                                  f"'{_quote(tbl)}') WHERE name = ?", (name,)).fetchone()
            out[key] = (tbl, tuple(info), tuple(unique or ()), _norm(sql))
        else:  # trigger, view
            out[key] = (tbl, _norm(sql))
    return out


def _quote(name: str) -> str:
    return name.replace("'", "''")


@cache
def reference(version: int) -> dict[str, object]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(ddl(version))
        return structure(conn)
    finally:
        conn.close()


def differences(conn: sqlite3.Connection, version: int) -> list[str]:
    """What the file's schema has that this version's does not, and the other way
    round (empty when they match)."""
    have, want = structure(conn), reference(version)
    diffs = []
    for key in sorted(set(have) | set(want)):
        if key not in want:
            diffs.append(f"unexpected {key}")
        elif key not in have:
            diffs.append(f"missing {key}")
        elif have[key] != want[key]:
            diffs.append(f"different {key}")
    return diffs
