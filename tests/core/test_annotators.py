"""Several annotators: an edit names the label version it replaces and is refused
when someone else saved a newer one (compare-and-append), review decisions too;
`gumshoe merge` brings an offline copy's versions and review events back, keeps
both versions where both sides changed a sample (the newer current, the conflict
listed and flagged in the queue), and adds nothing when run again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.project import LabelConflictError, LabelSchema, NewSample, Project, ProjectError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = LabelSchema("landmarks", "tri", ("a", "b", "c"))


def make(tmp_path: Path, n: int = 6, name: str = "main.gumshoe") -> Path:
    path = tmp_path / name
    with Project.create(path, SCHEMA) as p:
        src = p.add_source(tmp_path, "csv", "landmarks")
        p.add_samples(src, [NewSample(f"k{i}", f"img{i}.png", 100, 80, f"h{i}",
                                      points=np.full((3, 2), float(i))) for i in range(n)])
    return path


def other_annotator(path: Path, sid: int, value: float, author: str) -> None:
    """Another annotator's edit, from another process."""
    code = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from core.project import Project
        with Project.open({str(path)!r}) as p:
            cur = p.current_label({sid})
            p.add_label({sid}, points=np.full((3, 2), {value}), author={author!r},
                        replaces=cur.id)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_edit_over_someone_elses_newer_version_is_refused(tmp_path: Path) -> None:
    path = make(tmp_path)
    with Project.open(path) as p:
        shown = p.current_label(2)  # what this annotator's editor shows
        other_annotator(path, 2, 50.0, "bob")
        with pytest.raises(LabelConflictError, match=r"sample 2 was changed by bob at \d{4}-"):
            p.add_label(2, points=np.full((3, 2), 7.0), author="ann", replaces=shown.id)
        cur = p.current_label(2)
        assert cur.author == "bob" and cur.points[0, 0] == 50.0  # bob's edit stands
        assert [lab.author for lab in p.label_history(2)] == ["import", "bob"]
        # reloaded, ann's edit goes through and names bob's version
        lid = p.add_label(2, points=np.full((3, 2), 7.0), author="ann", replaces=cur.id)
        assert p.current_label(2).id == lid and p.current_label(2).replaces == cur.id


def test_undo_never_reverts_someone_elses_edit(tmp_path: Path) -> None:
    path = make(tmp_path)
    with Project.open(path) as p:
        before = p.current_label(1)
        mine = p.add_label(1, points=np.full((3, 2), 3.0), author="ann", replaces=before.id)
        other_annotator(path, 1, 60.0, "bob")
        # ann's undo restores the version before her edit, if hers is still current
        with pytest.raises(LabelConflictError, match="changed by bob"):
            p.add_label(1, points=before.points, author="ann", note="undo: moved a",
                        replaces=mine)
        assert p.current_label(1).points[0, 0] == 60.0
        # review decisions carry the status they replace
        p.set_review(4, "confirmed", "bob")
        with pytest.raises(LabelConflictError, match="marked confirmed by bob"):
            p.set_review(4, "excluded", "ann", replaces="unreviewed")
        assert p.sample(4).review_status == "confirmed"


def test_merge_brings_an_offline_copy_back(tmp_path: Path) -> None:
    path = make(tmp_path)
    copy = tmp_path / "laptop.gumshoe"
    out = subprocess.run([sys.executable, "-m", "core", "backup", str(path), str(copy)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with Project.open(copy) as c:  # offline: ann fixes 1 and 3, confirms 5
        for sid, v in ((1, 11.0), (3, 33.0)):
            c.add_label(sid, points=np.full((3, 2), v), author="ann",
                        replaces=c.current_label(sid).id)
        c.set_review(5, "confirmed", "ann")
        c.add_label(3, points=np.full((3, 2), 34.0), author="ann", replaces=c.current_label(3).id)
    with Project.open(path) as p:  # meanwhile at the office: bob fixes 2 and 3 (later)
        p.add_label(2, points=np.full((3, 2), 22.0), author="bob",
                    replaces=p.current_label(2).id)
        p.add_label(3, points=np.full((3, 2), 39.0), author="bob",
                    replaces=p.current_label(3).id)
    out = subprocess.run([sys.executable, "-m", "core", "merge", str(path), str(copy)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "conflict k2: both changed its label" in out.stdout
    assert "3 label versions and 4 review events added, 2 samples updated" in out.stdout, out.stdout
    with Project.open(path) as p:
        cur = {s.id: p.current_label(s.id) for s in p.samples()}
        assert cur[1].points[0, 0] == 11.0 and cur[1].author == "ann"  # only the copy changed it
        assert cur[2].points[0, 0] == 22.0  # only here
        assert cur[3].points[0, 0] == 39.0 and cur[3].author == "bob"  # both: the newer
        hist = p.label_history(3)
        assert [lab.points[0, 0] for lab in hist] == [2.0, 39.0, 33.0, 34.0]  # both kept
        assert hist[3].replaces == hist[2].id and hist[2].replaces == hist[0].id
        assert p.sample(5).review_status == "confirmed"
        assert p.sample(1).review_status == "fixed" and p.sample(3).review_status == "fixed"
        conflicts = p.conflicts()
        assert [(c.sample_id, c.kind) for c in conflicts] == [(3, "label"), (3, "review")]
        label = conflicts[0]
        assert (label.ours, label.kept) == (hist[1].id, hist[1].id) and label.theirs == hist[3].id
        assert [r.sample_id for r in p.queue(conflicts=True)] == [3]
        assert {r.sample_id: r.conflict for r in p.queue()}[3]
        assert p.info()["conflicts"] == 2
        assert p.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        n_labels = p.conn.execute("SELECT count(*) FROM labels").fetchone()[0]
        n_events = p.conn.execute("SELECT count(*) FROM review_events").fetchone()[0]
        again = p.merge(copy)  # idempotent
        assert (again.labels_added, again.events_added, again.conflicts) == (0, 0, [])
        assert p.conn.execute("SELECT count(*) FROM labels").fetchone()[0] == n_labels
        assert p.conn.execute("SELECT count(*) FROM review_events").fetchone()[0] == n_events
        # an annotator who edits the sample has seen it: the flag goes
        p.add_label(3, points=np.full((3, 2), 35.0), author="cy", replaces=cur[3].id)
        assert p.conflicts() == [] and not {r.sample_id: r.conflict for r in p.queue()}[3]


def test_merge_fast_forwards_and_refuses_other_projects(tmp_path: Path) -> None:
    path = make(tmp_path)
    with Project.open(path) as p:
        copy = p.backup(tmp_path / "copy.gumshoe")
    with Project.open(copy) as c:
        c.add_label(1, points=np.full((3, 2), 5.0), author="ann", replaces=c.current_label(1).id)
    with Project.open(path) as p:
        result = p.merge(copy)
        assert (result.labels_added, result.samples_updated, result.conflicts) == (1, 1, [])
        assert p.current_label(1).author == "ann"
        with pytest.raises(ProjectError, match="is this project itself"):
            p.merge(path)
    other = tmp_path / "other.gumshoe"
    Project.create(other, LabelSchema("age", "age")).close()
    with Project.open(path) as p, pytest.raises(ProjectError, match="holds other labels"):
        p.merge(other)
