"""The project file: creation, refusal of foreign and future files, label history,
review status, runs and scores, queue ranking, and kill-safety of edits."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core.project import (
    SCHEMA_VERSION,
    FutureProjectError,
    LabelSchema,
    NewSample,
    Project,
    ProjectError,
    ScoreRow,
)

SCHEMA = LabelSchema("landmarks", "tri", ("a", "b", "c"), ((0, 2),), ((0, 1), (1, 2)))


def make(tmp_path: Path, n: int = 5) -> Project:
    p = Project.create(tmp_path / "p.gumshoe", SCHEMA)
    src = p.add_source(tmp_path, "csv", "landmarks")
    pts = np.arange(6, dtype=float).reshape(3, 2)
    p.add_samples(src, [NewSample(f"k{i}", f"img{i}.png", 100, 80, f"h{i}", points=pts + i)
                        for i in range(n)])
    return p


def test_create_sets_wal_foreign_keys_and_version(tmp_path: Path) -> None:
    p = make(tmp_path)
    assert p.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert p.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert p.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert p.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    p.close()
    with Project.open(tmp_path / "p.gumshoe") as q:
        assert q.schema == SCHEMA
        assert q.count_samples() == 5


def test_refuses_future_version(tmp_path: Path) -> None:
    make(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "p.gumshoe")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(FutureProjectError, match="newer Gumshoe"):
        Project.open(tmp_path / "p.gumshoe")


def test_refuses_non_projects(tmp_path: Path) -> None:
    f = tmp_path / "x.gumshoe"
    f.write_bytes(b"hello, not sqlite at all" * 100)
    with pytest.raises(ProjectError, match="x.gumshoe"):
        Project.open(f)


def test_empty_file_from_a_killed_create_opens_as_new_project(tmp_path: Path) -> None:
    f = tmp_path / "x.gumshoe"
    f.write_bytes(b"")
    with Project.open(f) as p:
        assert p.count_samples() == 0 and p.schema is None


def test_refuses_other_sqlite_file(tmp_path: Path) -> None:
    f = tmp_path / "other.db"
    sqlite3.connect(f).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ProjectError, match="not a Gumshoe project"):
        Project.open(f)


def test_one_schema_per_project(tmp_path: Path) -> None:
    p = make(tmp_path)
    with pytest.raises(ProjectError, match="cannot add age labels"):
        p.set_schema(LabelSchema("age", "age"))
    p.set_schema(SCHEMA)  # the same schema again is fine


def test_same_key_twice_is_stored_once(tmp_path: Path) -> None:
    p = make(tmp_path)
    src = p.add_source(tmp_path, "csv", "landmarks")
    added = p.add_samples(src, [NewSample("k0", "img0.png", 1, 1, "h", points=np.zeros((3, 2)))])
    assert added == []
    assert p.count_samples() == 5


def test_label_history_is_append_only(tmp_path: Path) -> None:
    p = make(tmp_path)
    sid = p.samples()[0].id
    first = p.current_label(sid)
    moved = first.points.copy()
    moved[1] = [50.25, 60.125]
    p.add_label(sid, points=moved, author="ann", note="nose was off")
    hist = p.label_history(sid)
    assert [h.origin for h in hist] == ["import", "annotator"]
    assert np.allclose(p.current_label(sid).points[1], [50.25, 60.125])
    assert np.allclose(p.original_label(sid).points, first.points)
    assert p.sample(sid).review_status == "fixed"
    assert p.review_history(sid)[-1].author == "ann"


def test_missing_points_round_trip(tmp_path: Path) -> None:
    p = make(tmp_path)
    sid = p.samples()[0].id
    pts = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0]])
    p.add_label(sid, points=pts, visibility=np.array([2, 0, 1]))
    lab = p.current_label(sid)
    assert np.isnan(lab.points[1]).all() and np.allclose(lab.points[[0, 2]], pts[[0, 2]])
    assert lab.visibility.tolist() == [2, 0, 1]


def test_review_counts_and_queue_ranking(tmp_path: Path) -> None:
    p = make(tmp_path, n=6)
    ids = [s.id for s in p.samples()]
    assert p.queue()[0].score is None  # unscored: by id
    run = p.create_run("deepgum", {"epochs": 1})
    p.write_scores(run, [ScoreRow(i, score=float(k), outlier_prob=k / 10,
                                  landmark_scores=[0.0, float(k), np.nan])
                         for k, i in enumerate(ids)])
    q = p.queue()
    assert [r.sample_id for r in q] == ids[::-1]
    assert p.sample_score(ids[2]).landmark_scores[1] == 2.0
    assert np.isnan(p.sample_score(ids[2]).landmark_scores[2])
    assert p.sample_score(ids[2]).worst_landmark == 1
    p.set_review(ids[-1], "excluded", "ann")
    p.set_review(ids[-2], "confirmed", "ann")
    assert p.review_counts() == {"unreviewed": 4, "confirmed": 1, "fixed": 0, "excluded": 1}
    assert [r.sample_id for r in p.queue(statuses=["unreviewed"], limit=2)] == ids[-3:-5:-1]
    assert p.queue_count(min_score=2.0, max_score=4.0) == 3
    assert p.queue_count(search="img1") == 1
    assert p.queue_count(search="%") == 0  # LIKE wildcards are escaped


def test_runs_and_epochs(tmp_path: Path) -> None:
    p = make(tmp_path)
    run = p.create_run("l2", {"epochs": 2}, device="cpu")
    p.add_epoch(run, 0, train_loss=1.5, val_error=0.1, metrics={"pi": [0.9]})
    p.add_epoch(run, 1, train_loss=1.0, val_error=0.05)
    p.update_run(run, status="finished", state={"pi": 0.8})
    assert [e.epoch for e in p.epochs(run, after=0)] == [1]
    assert p.epochs(run)[0].metrics == {"pi": [0.9]}
    assert p.run(run).state == {"pi": 0.8} and p.run(run).status == "finished"


def test_info(tmp_path: Path) -> None:
    info = make(tmp_path).info()
    assert info["samples"] == 5 and info["task"] == "landmarks" and info["keypoints"] == 3
    assert info["age_min"] is None and info["skipped"] == 0
    json.dumps(info)


def test_killed_editor_loses_no_committed_edit(tmp_path: Path) -> None:
    """A process appending edits is SIGKILLed at a random moment: every edit it
    reported as done is in the file, and the file opens and passes integrity_check."""
    make(tmp_path).close()
    code = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from core.project import Project
        p = Project.open({str(tmp_path / 'p.gumshoe')!r})
        ids = [s.id for s in p.samples()]
        i = 0
        while True:
            p.add_label(ids[i % len(ids)], points=np.full((3, 2), float(i)), author="ann")
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    done = -1
    deadline = time.monotonic() + 30
    while done < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        done = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done >= 200, "the editing process did not get going"
    with Project.open(tmp_path / "p.gumshoe") as p:
        assert p.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n_edits = p.conn.execute("SELECT count(*) FROM labels WHERE origin='annotator'").fetchone()[0]
        assert n_edits >= done + 1  # every reported edit survived (one more may have committed)
        values = {int(p.current_label(s.id).points[0, 0]) for s in p.samples()}
        assert max(values) >= done
