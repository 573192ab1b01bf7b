"""The queue's path search through the path index (schema v3: an FTS5 trigram index
over samples.path kept in step by triggers): the same rows as checking every path,
served from the index when a search matches few samples, the index kept in step with
the samples, a v2 file upgraded with its index built, and the file still plain SQLite
for other readers (Datasette)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.project import (
    SCHEMA_VERSION,
    LabelSchema,
    NewSample,
    Project,
    ProjectError,
    ScoreColumns,
)
from core.store import queue as store_queue
from core.store import schema as store_schema

from .test_store import Statements

pytestmark = pytest.mark.skipif(not store_schema.path_index_supported(),
                                reason="this SQLite has no FTS5 trigram tokenizer")
K = 3
SCHEMA = LabelSchema("landmarks", "tri", ("a", "b", "c"))
NAMES = ["Video_%03d/frame_%05d.jpg", "clip_%03d/img_%05d.png", "été/ß_%03d_%05d.jpg",
         "odd%%name_%03d/50%%_off_%05d.jpg", "back\\slash_%03d/x_%05d.jpg"]


def build(tmp_path: Path, n: int = 900, scored: int = 700) -> Project:
    rng = np.random.default_rng(0)
    p = Project.create(tmp_path / "p.gumshoe", SCHEMA)
    src = p.add_source(tmp_path, "csv", "landmarks")
    p.add_samples(src, [NewSample(f"k{i}", NAMES[i % 5] % (i // 40, i), 64, 48, f"h{i}",
                                  points=rng.uniform(0, 60, (K, 2)),
                                  split=("train", "val")[i % 2]) for i in range(n)])
    ls = rng.normal(-3, 2, (scored, K))
    score = ls.max(axis=1)
    ids = rng.permutation(np.arange(1, n + 1))[:scored]
    run = p.create_run("deepgum")
    p.write_scores(run, ScoreColumns(ids, score, 1 / (1 + np.exp(-score)), ls))
    p.set_review(int(ids[0]), "confirmed", "ann")
    return p


SEARCHES = ["video_003/", "VIDEO_003", "frame_0001", "ß_00", "été", "50%_off", "%_off", "_off",
            "slash_00", "\\slash", "e_0", "00", "x", "no such path", "img_00123.png", "frame"]
FILTERS = [{}, {"descending": False}, {"sort": "path"}, {"sort": "id", "descending": False},
           {"statuses": ["unreviewed"]}, {"statuses": ["confirmed"]}, {"min_prob": 0.2},
           {"split": "val"}, {"sort": "worst_landmark"}]


@pytest.mark.parametrize("search", SEARCHES)
def test_indexed_search_gives_the_rows_of_a_scan(tmp_path, monkeypatch, search):
    p = build(tmp_path)
    indexed = {}
    for kw in FILTERS:
        indexed[str(kw)] = ([r.sample_id for r in p.queue(search=search, limit=50, **kw)],
                            p.queue_ids(search=search, **kw).tolist(),
                            p.queue_count(search=search, **kw))
    monkeypatch.setattr(store_queue, "INDEXED_SEARCH", -1)  # every search scans the paths
    for kw in FILTERS:
        ids = p.queue_ids(search=search, **kw).tolist()
        assert indexed[str(kw)] == ([r.sample_id for r in p.queue(search=search, limit=50, **kw)],
                                    ids, len(ids)), kw
        expected = {s.id for s in p.samples() if search.lower() in s.path.lower()}
        if not kw:
            assert set(ids) == expected  # ASCII letters match either case, like LIKE
    p.close()


def test_a_search_matching_few_samples_is_served_by_the_index(tmp_path):
    p = build(tmp_path)
    with Statements(p.conn) as st:
        rows = p.queue(search="frame_001", limit=200)
    assert len(st.sql) == 2 and len(rows) == 20  # the probe, then the page with the unscored
    plan = " ".join(r[-1] for r in p.conn.execute("EXPLAIN QUERY PLAN " + st.sql[-1].replace(
        "LIMIT 200 OFFSET 0", ""), ))
    assert "VIRTUAL TABLE INDEX" in plan and "SCAN s" not in plan, plan
    with Statements(p.conn) as st:  # matches many: walks the ranking as before
        p.queue(search="frame", limit=200, offset=0)
    assert len(st.sql) <= 3
    for offset in (0, 50, 880):
        with Statements(p.conn) as st:
            p.queue(search="clip_0", limit=50, offset=offset)
        assert len(st.sql) <= 3
    p.close()


def test_the_index_follows_the_samples(tmp_path):
    p = build(tmp_path, n=100, scored=50)
    assert p.queue_count(search="renamed") == 0
    with p.transaction():
        p.conn.execute("UPDATE samples SET path = 'renamed/' || path WHERE id IN (3, 4)")
    assert [r.sample_id for r in p.queue(search="renamed/", sort="id", descending=False)] == [3, 4]
    src = p.sources()[0].id
    (new,) = p.add_samples(src, [NewSample("late", "renamed/late.jpg", 9, 9, "h",
                                           points=np.ones((K, 2)))])
    assert p.queue_count(search="renamed/") == 3
    assert p.conn.execute("INSERT INTO sample_paths(sample_paths, rank) "
                          "VALUES ('integrity-check', 1)").rowcount != 0 or True
    p.close()
    conn = sqlite3.connect(tmp_path / "p.gumshoe")  # FTS5's own check against samples
    conn.execute("INSERT INTO sample_paths(sample_paths, rank) VALUES ('integrity-check', 1)")
    conn.close()


def _as_v2(path: Path) -> None:
    """The file as the v2 code wrote it: v3 is v2 plus the path index."""
    conn = sqlite3.connect(path)
    conn.executescript("DROP TRIGGER sample_paths_insert; DROP TRIGGER sample_paths_delete; "
                       "DROP TRIGGER sample_paths_update; DROP TABLE sample_paths; "
                       "PRAGMA user_version = 2;")
    assert store_schema.differences(conn, 2) == []
    conn.close()


def test_a_v2_file_is_upgraded_with_its_path_index(tmp_path):
    p = build(tmp_path, n=300, scored=300)
    want = p.queue_ids(search="video_00").tolist()
    p.close()
    _as_v2(tmp_path / "p.gumshoe")
    with Project.open(tmp_path / "p.gumshoe") as p:
        assert p.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert any("upgraded from schema v2" in w for w in p.warnings)
        with Statements(p.conn) as st:
            p.queue(search="video_00", limit=10)
        assert len(st.sql) == 2  # served by the index the upgrade built
        assert p.queue_ids(search="video_00").tolist() == want and len(want) == 60
    assert list(tmp_path.glob("p.gumshoe.v2-backup*"))


def test_a_file_without_the_index_still_searches(tmp_path):
    """A v3 file made where SQLite has no trigram tokenizer has no index: accepted,
    searched by a scan."""
    p = build(tmp_path, n=200, scored=100)
    want = p.queue_ids(search="clip").tolist()
    p.close()
    conn = sqlite3.connect(tmp_path / "p.gumshoe")
    conn.executescript("DROP TRIGGER sample_paths_insert; DROP TRIGGER sample_paths_delete; "
                       "DROP TRIGGER sample_paths_update; DROP TABLE sample_paths;")
    conn.close()
    with Project.open(tmp_path / "p.gumshoe") as p:
        assert p.queue_ids(search="clip").tolist() == want
        with Statements(p.conn) as st:
            p.queue(search="clip", limit=10)
        assert not any("sample_paths" in s for s in st.sql)


def test_the_file_stays_plain_sqlite_for_other_readers(tmp_path):
    """What Datasette does: list the tables and views and read each one; its check for
    a full-text table of ``samples`` (which would put a search box on the table that
    sends MATCH phrases, which a trigram index without positions refuses) finds none."""
    build(tmp_path, n=50, scored=50).close()
    conn = sqlite3.connect(f"file:{tmp_path / 'p.gumshoe'}?mode=ro", uri=True)
    for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')"):
        conn.execute(f'SELECT * FROM "{name}" LIMIT 1').fetchall()
    datasette_detect_fts = """select name from sqlite_master where rootpage = 0 and (
        sql like '%VIRTUAL TABLE%USING FTS%content="samples"%'
        or sql like '%VIRTUAL TABLE%USING FTS%content=[samples]%'
        or (tbl_name = "samples" and sql like '%VIRTUAL TABLE%USING FTS%'))"""
    assert conn.execute(datasette_detect_fts).fetchall() == []
    assert [r[0] for r in conn.execute("SELECT path FROM sample_paths WHERE path LIKE '%clip_00%'"
                                       " ORDER BY rowid")][:2] == ["clip_000/img_00001.png",
                                                                   "clip_000/img_00006.png"]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_path_index_this_sqlite_cannot_read_is_one_line(tmp_path):
    """As on a SQLite older than 3.34 (no trigram tokenizer): refused with the reason,
    not a traceback (here the file names a tokenizer no SQLite has)."""
    build(tmp_path, n=20, scored=10).close()
    conn = sqlite3.connect(tmp_path / "p.gumshoe")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_schema SET sql = replace(sql, 'trigram', 'nogram') "
                 "WHERE name = 'sample_paths'")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match="path index needs SQLite 3.34 or newer"):
        Project.open(tmp_path / "p.gumshoe")
