"""Upgrading old project files: the committed schema-v1 files (written by the v1
code, see tests/fixtures/build_v1_fixtures.py) open as v2 with every label
version, review event, run, epoch and score as the v1 code read them; a backup of
the v1 file is kept; a file from the future, a negative version or an altered v1
file is refused."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.project import SCHEMA_VERSION, FutureProjectError, LabelSchema, Project, ProjectError
from core.store import schema as store_schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _copy(tmp_path: Path, name: str) -> tuple[Path, dict]:
    dest = tmp_path / f"{name}.gumshoe"
    shutil.copy(FIXTURES / f"{name}.gumshoe", dest)
    return dest, json.loads((FIXTURES / f"{name}.expected.json").read_text())


def _close(a: object, b: object, atol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    x = np.array(a, dtype=np.float64)  # JSON null -> NaN
    y = np.array(b, dtype=np.float64)
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=0, atol=atol, equal_nan=True))


@pytest.mark.parametrize("name", ["v1-landmarks", "v1-age"])
def test_v1_fixture_upgrades_label_by_label(tmp_path: Path, name: str) -> None:
    path, want = _copy(tmp_path, name)
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1
    with Project.open(path) as p:
        assert p.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert p.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert p.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert p.schema == LabelSchema(**{k: tuple(tuple(x) if isinstance(x, list) else x
                                                   for x in v) if isinstance(v, list) else v
                                          for k, v in want["schema"].items()})
        assert any("upgraded from schema v1" in w for w in p.warnings)
        samples = {s.id: s for s in p.samples()}
        assert sorted(samples) == [s["id"] for s in want["samples"]]
        n_labels = 0
        for ws in want["samples"]:
            s = samples[ws["id"]]
            assert (s.key, s.path, s.width, s.height, s.split, s.content_hash, s.review_status) \
                == (ws["key"], ws["path"], ws["width"], ws["height"], ws["split"],
                    ws["content_hash"], ws["review_status"])
            assert (None if s.box is None else list(s.box)) == ws["box"]
            history = p.label_history(s.id)
            assert [lab.id for lab in history] == [w["id"] for w in ws["labels"]]
            for i, (lab, wl) in enumerate(zip(history, ws["labels"], strict=True)):
                # points: 1/10000 px integers now, exactly the 4 decimals the JSON kept
                assert _close(lab.points, wl["points"], 0.0), (s.key, i)
                assert (None if lab.visibility is None else lab.visibility.tolist()) \
                    == wl["visibility"], (s.key, i)
                assert (lab.age, lab.origin, lab.author, lab.created_at, lab.note) == \
                    (wl["age"], wl["origin"], wl["author"], wl["created_at"], wl["note"])
                assert lab.replaces == (None if i == 0 else history[i - 1].id)
                n_labels += 1
            assert p.current_label(s.id).id == ws["labels"][-1]["id"]
            assert p.original_label(s.id).id == ws["labels"][0]["id"]
            events = p.review_history(s.id)
            assert [(e.status, e.author, e.created_at, e.note) for e in events] == \
                [(w["status"], w["author"], w["created_at"], w["note"]) for w in ws["review"]]
            assert [e.replaces for e in events] == \
                (["unreviewed"] + [w["status"] for w in ws["review"][:-1]])[:len(events)]
        counts = p.review_counts()
        for st in counts:
            assert counts[st] == sum(w["review_status"] == st for w in want["samples"])
        runs = p.runs()
        assert [r.id for r in runs] == [w["id"] for w in want["runs"]]
        for run, wr in zip(runs, want["runs"], strict=True):
            assert (run.method, run.params, run.status, run.device, run.started_at,
                    run.finished_at, run.checkpoint, run.state, run.message) == \
                (wr["method"], wr["params"], wr["status"], wr["device"], wr["started_at"],
                 wr["finished_at"], wr["checkpoint"], wr["state"], wr["message"])
            assert [(e.epoch, e.train_loss, e.val_error, e.inlier_fraction, e.images_per_s,
                     e.seconds, e.metrics) for e in p.epochs(run.id)] == \
                [tuple(w[k] for k in ("epoch", "train_loss", "val_error", "inlier_fraction",
                                      "images_per_s", "seconds", "metrics"))
                 for w in wr["epochs"]]
            scores = p.scores(run.id)
            assert sorted(scores) == sorted(int(k) for k in wr["scores"])
            for sid, ws_ in wr["scores"].items():
                got = scores[int(sid)]
                assert got.score == ws_["score"] and got.outlier_prob == ws_["outlier_prob"]
                assert _close(got.landmark_scores, ws_["landmark_scores"], 1e-5)
                assert _close(got.landmark_probs, ws_["landmark_probs"], 1e-6)
                span = np.ptp(np.array(ws_["prediction"], dtype=float)) if ws_["prediction"] else 0
                assert _close(got.prediction, ws_["prediction"], span / 131068 + 1e-9)
                assert _close(got.prediction_std, ws_["prediction_std"], 2e-3)
                if ws_["landmark_scores"] is not None:
                    v = np.array(ws_["landmark_scores"], dtype=float)
                    assert got.worst_landmark == int(np.nanargmax(v))
        if runs and want["runs"][0]["scores"]:
            assert p.scored_run() == max(r.id for r in runs if want["runs"][r.id - 1]["scores"])
        assert {k: list(v) for k, v in p.contamination().items()} == \
            {int(k): v for k, v in want["contamination"].items()}
        assert [(s.id, s.format, s.task, s.options, s.status, s.skipped) for s in p.sources()] == \
            [(w["id"], w["format"], w["task"], json.loads(w["options"]), w["status"], w["skipped"])
             for w in want["sources"]]
        assert [(e.source_id, e.path, e.reason) for e in p.import_errors()] == \
            [(w["source_id"], w["path"], w["reason"]) for w in want["import_errors"]]
        info = p.info()
        for k, v in want["info"].items():
            assert info[k] == v, k
        assert info["labels"] == n_labels
    # the v1 file is kept beside it, unchanged
    backup = path.with_name(path.name + ".v1-backup")
    assert backup.exists()
    assert (FIXTURES / f"{name}.gumshoe").read_bytes() != path.read_bytes()
    with sqlite3.connect(backup) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM labels").fetchone()[0] == n_labels
    # and the upgraded file opens again as it is
    with Project.open(path) as p:
        assert p.warnings == [] and p.count_samples() == len(want["samples"])


def test_upgraded_file_has_the_schema_a_new_file_has(tmp_path: Path) -> None:
    path, _ = _copy(tmp_path, "v1-landmarks")
    Project.open(path).close()
    new = Project.create(tmp_path / "new.gumshoe")
    new.close()
    with sqlite3.connect(path) as a, sqlite3.connect(tmp_path / "new.gumshoe") as b:
        assert store_schema.structure(a) == store_schema.structure(b)
        assert store_schema.differences(a, SCHEMA_VERSION) == []


def test_upgraded_file_takes_edits_and_scores(tmp_path: Path) -> None:
    path, want = _copy(tmp_path, "v1-landmarks")
    with Project.open(path) as p:
        sid = want["samples"][0]["id"]
        cur = p.current_label(sid)
        lid = p.add_label(sid, points=cur.points + 1, replaces=cur.id, author="cy")
        assert p.current_label(sid).id == lid and p.current_label(sid).replaces == cur.id
        run = p.scored_run()
        assert [r.sample_id for r in p.queue(limit=3)] == \
            [r.sample_id for r in sorted(p.scores(run).values(), key=lambda r: (-r.score,
                                                                               r.sample_id))][:3]


def test_future_and_negative_versions_refused(tmp_path: Path) -> None:
    path, _ = _copy(tmp_path, "v1-landmarks")
    Project.open(path).close()
    for version, error, match in ((SCHEMA_VERSION + 1, FutureProjectError, "newer Gumshoe"),
                                  (-3, ProjectError, "unknown schema version -3")):
        with sqlite3.connect(path) as c:
            c.execute(f"PRAGMA user_version = {version}")
        with pytest.raises(error, match=match):
            Project.open(path)


def test_altered_v1_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path, _ = _copy(tmp_path, "v1-landmarks")
    with sqlite3.connect(path) as c:
        c.execute("CREATE TRIGGER sneaky AFTER INSERT ON labels BEGIN "
                  "DELETE FROM review_events; END")
    before = path.read_bytes()
    with pytest.raises(ProjectError, match="unexpected trigger sneaky"):
        Project.open(path)
    assert path.read_bytes() == before
