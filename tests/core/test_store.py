"""The store's query layer: a queue page in at most three statements, filters and
sorts, the indexes the queries use (EXPLAIN QUERY PLAN), bulk reads that decode
only what was asked, compact score rows, the Datasette views, and score sets that
appear all at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.project import (
    LabelSchema,
    NewSample,
    Project,
    QueueRow,
    ScoreColumns,
    ScoreRow,
)
from core.store import samples as store_samples

K = 68
SCHEMA = LabelSchema("landmarks", "many", tuple(f"p{i}" for i in range(K)))


def build(tmp_path: Path, n: int = 1200, scored: int | None = None, seed: int = 0
          ) -> tuple[Project, int, np.ndarray]:
    """n samples, the first ``scored`` of them scored by one run; returns the run id
    and the per-sample scores (by sample id - 1)."""
    rng = np.random.default_rng(seed)
    p = Project.create(tmp_path / "p.gumshoe", SCHEMA)
    src = p.add_source(tmp_path, "csv", "landmarks")
    p.add_samples(src, [NewSample(f"k{i:05d}", f"dir{i % 7}/img{i:05d}.png", 640, 480, f"h{i}",
                                  points=rng.uniform(0, 400, (K, 2)),
                                  split=("train", "train", "val", "test")[i % 4])
                        for i in range(n)])
    scored = n if scored is None else scored
    ls = rng.normal(-3, 2, (scored, K))
    score = ls.max(axis=1)
    run = p.create_run("deepgum")
    p.write_scores(run, ScoreColumns(np.arange(1, scored + 1), score, 1 / (1 + np.exp(-score)),
                                     ls, None, rng.uniform(0, 600, (scored, 2 * K)),
                                     rng.uniform(0.5, 3, (scored, 2 * K)),
                                     issue=["swap" if i % 10 == 0 else None for i in range(scored)]))
    return p, run, score


class Statements:
    """Counts the SQL statements a connection runs (sqlite3's trace callback)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.sql: list[str] = []

    def __enter__(self) -> Statements:
        self.conn.set_trace_callback(self.sql.append)
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.set_trace_callback(None)


@pytest.mark.parametrize("kw", [
    {}, {"statuses": ["unreviewed"]}, {"statuses": ["fixed", "confirmed"]},
    {"min_prob": 0.5}, {"max_prob": 0.1, "min_prob": 0.01}, {"split": "val"},
    {"search": "dir3/"}, {"landmark": 5}, {"issue": "swap"}, {"conflicts": True},
    {"sort": "path"}, {"sort": "status", "descending": False}, {"sort": "reviewed_at"},
    {"sort": "worst_landmark"}, {"sort": "score", "descending": False}, {"sort": "prob"},
])
def test_a_queue_page_is_at_most_three_statements(tmp_path: Path, kw: dict) -> None:
    p, run, _ = build(tmp_path, n=1200, scored=1000)
    for sid in (5, 9, 1100):
        p.set_review(sid, "fixed", "ann")
    for offset in (0, 200, 800, 1000, 1100):
        with Statements(p.conn) as st:
            rows = p.queue(limit=200, offset=offset, **kw)
        assert len(st.sql) <= 3, st.sql
        assert all(isinstance(r, QueueRow) for r in rows)
    assert [r.sample_id for r in p.queue(**kw)] == p.queue_ids(**kw).tolist()
    assert p.queue_count(**kw) == len(p.queue(**kw))
    with Statements(p.conn) as st:
        p.queue_count(**kw)
    assert len(st.sql) == 1


def test_queue_ranks_filters_and_sorts(tmp_path: Path) -> None:
    p, run, score = build(tmp_path, n=300, scored=250)
    p.set_review(3, "confirmed", "ann")
    p.set_review(7, "excluded", "bob")
    rows = p.queue()
    order = sorted(range(1, 251), key=lambda i: (-score[i - 1], i)) + list(range(251, 301))
    assert [r.sample_id for r in rows] == order  # ranked, then the unscored by id
    top = rows[0]
    assert top.key == f"k{top.sample_id - 1:05d}" and top.score == pytest.approx(score.max())
    assert top.outlier_prob == pytest.approx(1 / (1 + np.exp(-score.max())))
    row = p.sample_score(top.sample_id)
    assert top.worst_landmark == row.worst_landmark == int(np.argmax(row.landmark_scores))
    # pages in order cover the same ranking
    paged = [r.sample_id for off in range(0, 300, 64) for r in p.queue(limit=64, offset=off)]
    assert paged == order
    # filters
    assert {r.review_status for r in p.queue(statuses=["confirmed", "excluded"])} == \
        {"confirmed", "excluded"}
    assert 3 not in [r.sample_id for r in p.queue(statuses=["unreviewed"])]
    assert p.queue_count(statuses=["unreviewed"]) == 298
    assert all(r.outlier_prob >= 0.4 for r in p.queue(min_prob=0.4))
    assert all(r.split == "val" for r in p.queue(split="val"))
    assert {r.worst_landmark for r in p.queue(landmark=7)} == {7}
    assert all(r.issue == "swap" for r in p.queue(issue="swap")) and p.queue_count(issue="swap") == 25
    assert p.queue_count(search="dir3/") == sum(1 for i in range(300) if i % 7 == 3)
    assert p.queue_count(search="%") == 0  # LIKE wildcards are escaped
    # sorts
    paths = [r.path for r in p.queue(sort="path")]
    assert paths == sorted(paths, reverse=True)
    assert [r.sample_id for r in p.queue(sort="score", descending=False)][:250] == order[:250][::-1]
    assert p.queue(sort="prob")[0].sample_id == order[0]
    assert [r.review_status for r in p.queue(sort="status", descending=False)][-2:] == \
        ["unreviewed", "unreviewed"]
    with pytest.raises(ValueError, match="unknown sort column"):
        p.queue(sort="nonsense")


def test_queue_rows_of_given_ids_keep_their_order(tmp_path: Path) -> None:
    p, _, _ = build(tmp_path, n=50)
    ids = [40, 3, 17, 1]
    with Statements(p.conn) as st:
        rows = p.queue_rows(ids)
    assert [r.sample_id for r in rows] == ids and len(st.sql) == 1


def test_age_queue_shows_the_label_and_the_estimate(tmp_path: Path) -> None:
    p = Project.create(tmp_path / "a.gumshoe", LabelSchema("age", "age"))
    src = p.add_source(tmp_path, "utkface", "age")
    ids = p.add_samples(src, [NewSample(f"{a}", f"{a}.jpg", 9, 9, "h", age=float(a))
                              for a in (20, 30, 40)])
    run = p.create_run("deepgum")
    p.write_scores(run, [ScoreRow(i, float(k), 0.5, prediction=[25.5 + k]) for k, i in enumerate(ids)])
    p.add_label(ids[0], age=21.0, author="ann")
    rows = {r.sample_id: r for r in p.queue()}
    assert rows[ids[0]].age == 21.0 and rows[ids[0]].predicted_age == pytest.approx(25.5)
    assert rows[ids[2]].age == 40.0 and rows[ids[2]].predicted_age == pytest.approx(27.5)


def _plan(conn: sqlite3.Connection, sql: str, args: list) -> str:
    return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_queries_use_their_indexes(tmp_path: Path) -> None:
    p, run, _ = build(tmp_path, n=400)
    from core.store.queue import QueueQuery, _one

    def scored(**kw: object) -> str:
        sql, args = p._scored_sql(QueueQuery(**kw), p._row_cols)
        return _plan(p.conn, sql + " LIMIT 200", args)

    plan = scored()
    assert "SEARCH r USING PRIMARY KEY (set_id=?)" in plan and "TEMP B-TREE" not in plan, plan
    assert "SEARCH s USING INTEGER PRIMARY KEY" in plan, plan
    plan = scored(statuses=("unreviewed",))
    assert "samples_status" in plan and "TEMP B-TREE" not in plan, plan
    plan = scored(statuses=("fixed",))
    assert "SEARCH s USING INDEX samples_status" in plan, plan
    assert "SEARCH sc USING INDEX sqlite_autoindex_scores_1 (set_id=? AND sample_id=?)" in plan
    for sort, index in (("path", "samples_path"), ("status", "samples_status"),
                        ("split", "samples_split"), ("reviewed_at", "samples_reviewed")):
        sql, args = p._sample_sorted_sql(QueueQuery(sort=sort), p._row_cols)
        plan = _plan(p.conn, sql + " LIMIT 200", args)
        assert f"SCAN s USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan
    sql, args = p._scored_sql(QueueQuery(), _one)
    plan = _plan(p.conn, f"SELECT count(*) FROM ({sql})", args)
    assert "USING PRIMARY KEY" in plan and " s " not in f" {plan} ", plan  # no join: ids only
    from core.store.queue import _sid
    sql, args = p._scored_sql(QueueQuery(statuses=("unreviewed",)), _sid)
    plan = _plan(p.conn, sql, args)
    assert "SEARCH r USING PRIMARY KEY" in plan and "SEARCH s USING INTEGER" not in plan, plan
    plan = _plan(p.conn, f"SELECT {store_samples.LABEL_COLS} FROM samples s JOIN labels l ON "
                 "l.id = s.label_id WHERE s.id IN (1, 2, 3)", [])
    assert "SEARCH s USING INTEGER PRIMARY KEY" in plan and "SEARCH l USING INTEGER PRIMARY KEY" in plan
    plan = _plan(p.conn, "SELECT id FROM labels WHERE sample_id = ? ORDER BY id", [1])
    assert "labels_sample" in plan
    plan = _plan(p.conn, "SELECT * FROM scores sc WHERE sc.set_id = (SELECT score_set FROM runs "
                 "WHERE id = ?) AND sc.sample_id IN (1, 2)", [run])
    assert "sqlite_autoindex_scores_1 (set_id=? AND sample_id=?)" in plan


def test_bulk_reads_decode_only_what_was_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    p, run, _ = build(tmp_path, n=1000)
    decoded: list[int] = []
    real = store_samples._label
    monkeypatch.setattr(store_samples, "_label", lambda r: decoded.append(r[0]) or real(r))
    labels = p.current_labels([10, 20, 30])
    assert sorted(labels) == [10, 20, 30] and len(decoded) == 3
    decoded.clear()
    with Statements(p.conn) as st:
        originals = p.original_labels(range(1, 1001))
    assert len(originals) == 1000 and len(decoded) == 1000 and len(st.sql) == 2  # 500 ids a go
    from core.store import codec
    calls: list[int] = []
    real_f32 = codec.decode_f32
    monkeypatch.setattr(codec, "decode_f32", lambda b: (b is not None and calls.append(1)) or real_f32(b))
    rows = p.scores(run, columns=("outlier_prob",))
    assert len(rows) == 1000 and calls == []
    assert all(r.landmark_scores is None and r.prediction is None and r.outlier_prob is not None
               for r in rows.values())
    ids, values = p.score_array(run)
    assert len(ids) == 1000 and values[0] == rows[1].score


def test_export_reads_labels_in_bulk(tmp_path: Path) -> None:
    from core.export import export

    p, _, _ = build(tmp_path, n=1200)
    p.add_label(4, points=np.zeros((K, 2)), author="ann")
    p.set_review(9, "confirmed", "bob")
    with Statements(p.conn) as st:
        result = export(p, tmp_path / "out.csv", "csv", max_score=0.0)
    assert result.written + sum(result.dropped.values()) == 1200 and result.changes == 2
    assert len(st.sql) < 40, len(st.sql)  # was one statement (or more) per sample


def test_score_rows_stay_under_a_kilobyte(tmp_path: Path) -> None:
    """68 landmarks: prediction (2K values), per-landmark scores and uncertainty and the
    sample fields in under 1 kB of stored values per sample."""
    p, run, _ = build(tmp_path, n=200)
    per_row = p.conn.execute(
        "SELECT avg(coalesce(length(landmark_scores), 0) + coalesce(length(landmark_probs), 0)"
        " + coalesce(length(prediction), 0) + coalesce(length(prediction_std), 0)) + 8 * 6 + 8"
        " FROM scores").fetchone()[0]
    assert per_row < 1000, per_row
    rank = p.conn.execute("SELECT count(*) FROM score_ranks").fetchone()[0]
    assert rank == 200


def test_score_values_round_trip_within_their_stated_precision(tmp_path: Path) -> None:
    p, run, _ = build(tmp_path, n=3)
    rng = np.random.default_rng(3)
    ls = rng.normal(0, 50, K)
    ls[4] = np.nan
    pred = rng.uniform(-100, 8000, 2 * K)
    pred[7] = np.nan
    std = rng.uniform(0.01, 300, 2 * K)
    probs = rng.uniform(0, 1, K)  # not sigmoid(scores): stored as given
    p.write_scores(run, [ScoreRow(2, 1.5, 0.7, ls, probs, pred, std, "shifted", 3.25)])
    r = p.sample_score(2, run)
    np.testing.assert_allclose(r.landmark_scores, ls.astype(np.float32), equal_nan=True)
    np.testing.assert_allclose(r.landmark_probs, probs, atol=1e-7)
    assert np.isnan(r.prediction[7])
    ok = np.isfinite(pred)
    span = np.ptp(pred[ok])
    assert np.abs(np.array(r.prediction)[ok] - pred[ok]).max() <= span / 131068 * 1.0001
    np.testing.assert_allclose(r.prediction_std, std, rtol=1 / 1024)
    assert (r.issue, r.statistic, r.worst_landmark, r.run_id) == ("shifted", 3.25,
                                                                  int(np.nanargmax(ls)), run)
    assert list(p.scores(run)) == [2]  # the new set replaced the whole old one
    with pytest.raises(ValueError, match="not a finite number"):
        p.write_scores(run, [ScoreRow(1, float("nan"))])


def test_datasette_views_expand_the_arrays(tmp_path: Path) -> None:
    p, run, _ = build(tmp_path, n=4)
    lab = p.current_label(2)
    pts = p.conn.execute("SELECT landmark, x, y, visibility FROM label_points WHERE label_id = ? "
                         "ORDER BY landmark", (lab.id,)).fetchall()
    assert len(pts) == K
    np.testing.assert_array_equal(np.array([[x, y] for _, x, y, _ in pts]), lab.points)
    assert {v for *_, v in pts} == {2}
    row = p.sample_score(3, run)
    for array, want in (("landmark_scores", row.landmark_scores), ("prediction", row.prediction),
                        ("prediction_std", row.prediction_std)):
        got = [v for (v,) in p.conn.execute(
            "SELECT value FROM score_arrays WHERE run_id = ? AND sample_id = 3 AND array = ? "
            "ORDER BY i", (run, array))]
        np.testing.assert_allclose(got, want, rtol=1e-12), array
    assert p.conn.execute("SELECT count(*) FROM run_scores WHERE run_id = ?", (run,)).fetchone()[0] == 4


def test_a_new_score_set_replaces_the_old_one_at_once(tmp_path: Path) -> None:
    p, run, score = build(tmp_path, n=50)
    first = p.run(run).score_set
    ids = np.arange(1, 51)
    p.write_scores(run, ScoreColumns(ids, -score))
    assert p.run(run).score_set != first
    assert p.conn.execute("SELECT count(*) FROM scores WHERE set_id = ?", (first,)).fetchone()[0] == 0
    assert p.conn.execute("SELECT count(*) FROM score_ranks WHERE set_id = ?",
                          (first,)).fetchone()[0] == 0
    assert p.queue()[0].score == pytest.approx(-score.min())
    # a set left half-written by a killed writer is never read, and goes at the next write
    with p.transaction():
        dead = p.conn.execute("INSERT INTO score_sets(run_id, created_at) VALUES (?, 'x')",
                              (run,)).lastrowid
        p.conn.execute("INSERT INTO scores(set_id, sample_id, score) VALUES (?, 1, 99.0)", (dead,))
    assert p.sample_score(1, run).score == pytest.approx(-score[0])
    p.write_scores(run, ScoreColumns(ids, score))
    assert p.conn.execute("SELECT count(*) FROM score_sets").fetchone()[0] == 1


def test_a_probability_range_is_a_score_seek_where_probabilities_are_sigmoids(
        tmp_path: Path) -> None:
    from core.store.queue import QueueQuery

    p, run, score = build(tmp_path, n=400)
    prob = 1 / (1 + np.exp(-score))
    assert p.conn.execute("SELECT prob_from_score FROM score_sets").fetchone()[0] == 1
    sql, args = p._scored_sql(QueueQuery(min_prob=0.9, max_prob=0.99), p._row_cols)
    plan = _plan(p.conn, sql + " LIMIT 200", args)
    assert "SEARCH r USING PRIMARY KEY (set_id=? AND score>? AND score<?)" in plan, plan
    cases = [(0.5, None), (None, 0.05), (0.2, 0.6), (float(prob[7]), float(prob[7])),
             (1.0, None), (None, 0.0), (0.0, 1.0)]
    for lo, hi in cases:
        want = {i + 1 for i, v in enumerate(prob)
                if (lo is None or v >= lo) and (hi is None or v <= hi)}
        assert {r.sample_id for r in p.queue(min_prob=lo, max_prob=hi)} == want, (lo, hi)
        assert p.queue_count(min_prob=lo, max_prob=hi) == len(want)
    # probabilities of another kind: the same answers, from the probability column alone
    other = np.random.default_rng(9).uniform(0, 1, 400)
    p.write_scores(run, ScoreColumns(np.arange(1, 401), score, other))
    assert p.conn.execute("SELECT prob_from_score FROM score_sets").fetchone()[0] == 0
    for lo, hi in cases:
        want = {i + 1 for i, v in enumerate(other)
                if (lo is None or v >= lo) and (hi is None or v <= hi)}
        assert {r.sample_id for r in p.queue(min_prob=lo, max_prob=hi)} == want, (lo, hi)
