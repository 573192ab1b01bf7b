"""Schema migrations: one step function per version, each taking a file from the
version before it to its own, as one transaction.

A step runs its DDL with ``executescript`` (the script holds its own ``BEGIN
IMMEDIATE ... COMMIT`` and first checks, inside the write lock, that the file is
still at the version the step expects: another process may have migrated it
meanwhile). Before the first step, :func:`migrate` writes a backup copy of the
file beside it (SQLite's online backup, so it is consistent even while others
read it) and checks that the old file holds exactly the schema of its version.
"""

from __future__ import annotations

import errno
import logging
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

from core.store import codec, files
from core.store.records import ProjectError, now_iso
from core.store.schema import APP_ID, PAGE_SIZE, SCHEMA_VERSION, current_ddl

log = logging.getLogger(__name__)

Step = Callable[[sqlite3.Connection], None]


def _guard(version: int) -> str:
    """Script lines that abort it unless the file is at ``version``."""
    t = f"temp._gumshoe_at_v{version}"
    return (f"DROP TABLE IF EXISTS {t};\nCREATE TABLE {t}(v INTEGER CHECK (v = {version}));\n"
            f"INSERT INTO {t} SELECT user_version FROM pragma_user_version;\nDROP TABLE {t};\n")


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    try:
        conn.executescript(script)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def step_1(conn: sqlite3.Connection) -> None:
    """A new, empty file -> v1 (kept so that old files' history reads as steps)."""
    from core.store.schema import V1

    _run_script(conn, "BEGIN IMMEDIATE;\n" + _guard(0) + V1 + f"""
PRAGMA application_id = {APP_ID};
INSERT INTO meta(key, value) VALUES ('created_at', '{now_iso()}');
PRAGMA user_version = 1;
COMMIT;""")


def _v1_functions(conn: sqlite3.Connection) -> None:
    """Python helpers the v1 -> v2 script calls: JSON lists to the binary formats."""

    def floats(text: str | None) -> list[float] | None:
        if text is None:
            return None
        return [math.nan if v is None else float(v) for v in codec.load_json(text, "score array")]

    def points(text: str | None) -> bytes | None:
        if text is None:
            return None
        raw = codec.load_json(text, "points")
        return codec.encode_points([[math.nan, math.nan] if p is None else p for p in raw])

    def visibility(text: str | None, pts: str | None) -> bytes | None:
        if text is None or pts is None:
            return None
        raw = codec.load_json(pts, "points")
        arr = codec.decode_points(codec.encode_points(
            [[math.nan, math.nan] if p is None else p for p in raw]))
        return codec.encode_visibility(codec.load_json(text, "visibility"), arr)

    def q16(text: str | None, part: int) -> object:
        return codec.encode_q16(floats(text))[part]

    conn.create_function("gs_points", 1, points, deterministic=True)
    conn.create_function("gs_visibility", 2, visibility, deterministic=True)
    conn.create_function("gs_f32", 1, lambda t: codec.encode_f32(floats(t)), deterministic=True)
    conn.create_function("gs_f16", 1, lambda t: codec.encode_f16(floats(t)), deterministic=True)
    conn.create_function("gs_worst", 1, lambda t: codec.worst_index(floats(t)),
                         deterministic=True)
    conn.create_function("gs_q16", 2, q16, deterministic=True)
    conn.create_function(
        "gs_probs", 3, lambda s, p, prob: codec.probs_to_store(floats(s), floats(p),
                                                               prob is not None),
        deterministic=True)


V1_TABLES = ("meta", "sources", "import_errors", "samples", "labels", "review_events",
             "contamination", "runs", "epochs", "scores")


def step_2(conn: sqlite3.Connection) -> None:
    """v1 -> v2: per-landmark JSON lists become binary arrays, runs' scores become
    published score sets with their ranking table, samples point at their current
    label, labels and review events name what they replaced; new tables for review
    counts, merge conflicts and the trainer lease."""
    _v1_functions(conn)
    rename = "".join(f"ALTER TABLE {t} RENAME TO v1_{t};\n" for t in V1_TABLES)
    drop_old_indexes = ("DROP INDEX samples_status; DROP INDEX labels_sample; "
                        "DROP INDEX review_events_sample; DROP INDEX scores_rank;\n")
    drop = "".join(f"DROP TABLE v1_{t};\n" for t in reversed(V1_TABLES))
    conn.execute("PRAGMA foreign_keys = OFF")  # tables are rebuilt; checked before COMMIT
    conn.execute("PRAGMA legacy_alter_table = ON")
    try:
        _run_script(conn, "BEGIN IMMEDIATE;\n" + _guard(1) + rename + drop_old_indexes
                    + current_ddl() + """
INSERT INTO meta(key, value) SELECT key, value FROM v1_meta;
INSERT INTO sources(id, root, format, task, options, status, skipped, created_at, completed_at)
    SELECT id, root, format, task, options, status, skipped, created_at, completed_at FROM v1_sources;
INSERT INTO import_errors(id, source_id, path, reason, created_at)
    SELECT id, source_id, path, reason, created_at FROM v1_import_errors;
INSERT INTO samples(id, source_id, key, path, width, height, box, split, content_hash,
                    review_status, reviewed_by, reviewed_at, label_id)
    SELECT s.id, s.source_id, s.key, s.path, s.width, s.height, s.box, s.split, s.content_hash,
           s.review_status, s.reviewed_by, s.reviewed_at,
           (SELECT max(l.id) FROM v1_labels l WHERE l.sample_id = s.id)
    FROM v1_samples s;
INSERT INTO labels(id, sample_id, points, visibility, age, origin, author, created_at, note, replaces)
    SELECT l.id, l.sample_id, gs_points(l.points), gs_visibility(l.visibility, l.points), l.age,
           l.origin, l.author, l.created_at, l.note,
           (SELECT max(p.id) FROM v1_labels p WHERE p.sample_id = l.sample_id AND p.id < l.id)
    FROM v1_labels l;
INSERT INTO review_events(id, sample_id, status, author, created_at, note, replaces)
    SELECT e.id, e.sample_id, e.status, e.author, e.created_at, e.note,
           coalesce((SELECT p.status FROM v1_review_events p WHERE p.sample_id = e.sample_id
                     AND p.id < e.id ORDER BY p.id DESC LIMIT 1), 'unreviewed')
    FROM v1_review_events e;
INSERT INTO contamination(sample_id, spec, seed, image_corrupted, landmarks)
    SELECT sample_id, spec, seed, image_corrupted, landmarks FROM v1_contamination;
INSERT INTO runs(id, method, params, status, device, host, pid, started_at, updated_at,
                 finished_at, checkpoint, state, message)
    SELECT id, method, params, status, device, host, pid, started_at, updated_at, finished_at,
           checkpoint, state, message FROM v1_runs;
INSERT INTO epochs(run_id, epoch, train_loss, val_error, inlier_fraction, images_per_s, seconds,
                   metrics, created_at)
    SELECT run_id, epoch, train_loss, val_error, inlier_fraction, images_per_s, seconds, metrics,
           created_at FROM v1_epochs;
INSERT INTO score_sets(id, run_id, epoch, rows, status, created_at)
    SELECT sc.run_id, sc.run_id, NULL, count(*), 'published', r.updated_at
    FROM v1_scores sc JOIN v1_runs r ON r.id = sc.run_id GROUP BY sc.run_id;
UPDATE runs SET score_set = id WHERE id IN (SELECT id FROM score_sets);
INSERT INTO scores(set_id, sample_id, score, outlier_prob, statistic, issue, worst_landmark,
                   landmark_scores, landmark_probs, prediction, prediction_lo, prediction_step,
                   prediction_std)
    SELECT run_id, sample_id, score, outlier_prob, NULL, NULL, gs_worst(landmark_scores),
           gs_f32(landmark_scores), gs_probs(landmark_scores, landmark_probs, outlier_prob),
           gs_q16(prediction, 0), gs_q16(prediction, 1), gs_q16(prediction, 2),
           gs_f16(prediction_std)
    FROM v1_scores ORDER BY run_id, sample_id;
INSERT INTO score_ranks(set_id, score, sample_id, outlier_prob, worst_landmark, issue)
    SELECT set_id, score, sample_id, outlier_prob, worst_landmark, issue FROM scores
    ORDER BY set_id, score DESC, sample_id;
""" + drop + f"""
INSERT OR REPLACE INTO meta(key, value) VALUES ('migrated_v1_to_v2_at', '{now_iso()}');
DROP TABLE IF EXISTS temp._gumshoe_fk;
CREATE TEMP TABLE _gumshoe_fk(n INTEGER CHECK (n = 0));
INSERT INTO temp._gumshoe_fk SELECT count(*) FROM pragma_foreign_key_check;
DROP TABLE temp._gumshoe_fk;
PRAGMA user_version = 2;
COMMIT;""")
    finally:
        conn.execute("PRAGMA legacy_alter_table = OFF")
        conn.execute("PRAGMA foreign_keys = ON")


STEPS: dict[int, Step] = {1: step_1, 2: step_2}
assert sorted(STEPS) == list(range(1, SCHEMA_VERSION + 1))


def backup_path(path: Path, version: int) -> Path:
    base = path.with_name(f"{path.name}.v{version}-backup")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def migrate(conn: sqlite3.Connection, path: Path, version: int) -> Path | None:
    """Bring the file from ``version`` to :data:`SCHEMA_VERSION`, one step at a time;
    returns the backup written first (None for a new file)."""
    if version == SCHEMA_VERSION:
        return None
    backup = None
    if version > 0:  # the caller checked that its schema is that of its version
        backup = backup_path(path, version)
        files.backup(conn, backup)
        log.warning("%s: upgrading the project from schema v%d to v%d (backup: %s)",
                    path, version, SCHEMA_VERSION, backup)
    for v in range(version + 1, SCHEMA_VERSION + 1):
        try:
            STEPS[v](conn)
        except sqlite3.IntegrityError as exc:
            now = conn.execute("PRAGMA user_version").fetchone()[0]
            if now >= v:  # another process took the file to this version first
                continue
            raise ProjectError(f"{path}: cannot upgrade to schema v{v} ({exc}); the file is "
                               f"unchanged{f' and backed up in {backup}' if backup else ''}") from None
        except (sqlite3.Error, ValueError) as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise OSError(errno.ENOSPC, f"disk full: {path}") from None
            if version == 0:
                raise ProjectError(f"{path}: cannot create the project ({exc})") from None
            raise ProjectError(f"{path}: cannot upgrade to schema v{v} ({exc}); the file is "
                               f"unchanged{f' and backed up in {backup}' if backup else ''}") from None
    if version > 0:
        compact(conn, path)
    return backup


def compact(conn: sqlite3.Connection, path: Path) -> None:
    """After an upgrade: VACUUM into the current page size, giving back the space of
    the old encoding. Skipped (the file only stays larger) when others have it open."""
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("VACUUM")
    except sqlite3.Error as exc:
        log.info("%s: not compacted after the upgrade (%s)", path, exc)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {files.BUSY_TIMEOUT_MS}")
