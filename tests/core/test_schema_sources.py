"""Schemas taken from the source: flip pairs inferred from keypoint names, the task
picked from a CSV header, a keypoint mismatch between two imports, and `gumshoe info`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.importer import import_source
from core.project import LabelSchema, Project, ProjectError
from core.schemas import (
    COCO17,
    describe_schema,
    infer_flip_pairs,
    mirror_names,
    schema_conflict,
    schema_for_keypoints,
)
from tests.core.formats_util import write_png

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("names", "pairs"), [
    (["snout", "leftear", "rightear", "tailbase"], [(1, 2)]),  # DeepLabCut openfield
    (["Left_Paw", "nose", "Right_Paw"], [(0, 2)]),
    (["LEFT_EYE", "RIGHT_EYE"], [(0, 1)]),
    (["ear_left", "ear_right"], [(0, 1)]),
    (["l_ear", "r_ear", "L-hip", "R-hip", "knee.l", "knee.r", "elbow L", "elbow R"],
     [(0, 1), (2, 3), (4, 5), (6, 7)]),
    (["ear_L", "ear_R", "earL", "earR"], [(0, 1), (2, 3)]),
    (["LEar", "REar", "L1", "R1", "FL", "FR", "HL", "HR"], [(0, 1), (2, 3), (4, 5), (6, 7)]),
    (["rightear", "leftear"], [(1, 0)]),  # listed right first
    # no left marker, or no partner: no pair
    (["tail", "tailL"], []),
    (["lateral", "rateral"], []),  # l without a separator is not a side
    (["l", "r"], []),
    (["Left", "Right", "Leftish"], [(0, 1)]),
    (["left_eye", "right_eye", "left_eye_inner"], [(0, 1)]),
    (["hand", "Hand"], []),
])
def test_flip_pairs_from_names(names, pairs):
    assert list(infer_flip_pairs(names)) == pairs


def test_a_keypoint_is_in_one_pair_at_most():
    # "left" could pair with "right" or with "r_left"... the first rule wins, once
    names = ["left_l", "right_l", "left_r"]
    pairs = infer_flip_pairs(names)
    flat = [i for p in pairs for i in p]
    assert len(flat) == len(set(flat)) and pairs == ((0, 1),)
    assert mirror_names("left_l") == ["right_l", "left_r"]
    schema_for_keypoints(names).flip_permutation()


def test_schema_for_keypoints_checks_the_source():
    with pytest.raises(ValueError, match="named twice"):
        schema_for_keypoints(["a", "b", "a"])
    with pytest.raises(ValueError, match="does not name two"):
        schema_for_keypoints(["a", "b"], [(0, 2)])
    with pytest.raises(ValueError, match="does not name two"):
        schema_for_keypoints(["a", "b"], flip_pairs=[(1, 1)])
    with pytest.raises(ValueError, match="shares a keypoint"):
        schema_for_keypoints(["a", "b", "c"], flip_pairs=[(0, 1), (1, 2)])
    # the source's own pairs win over the names, and a built-in needs the same pairs
    s = schema_for_keypoints(["left", "right", "mid"], flip_pairs=[])
    assert s.flip_pairs == ()
    assert schema_for_keypoints(COCO17.keypoints, flip_pairs=COCO17.flip_pairs) is COCO17
    assert schema_for_keypoints(COCO17.keypoints, flip_pairs=[]) is not COCO17


def test_schema_conflicts_are_one_line_and_name_the_difference():
    a = LabelSchema("landmarks", "a", ("snout", "leftear", "rightear"), ((1, 2),))
    assert schema_conflict(a, a) is None
    other_skeleton = LabelSchema("landmarks", "b", a.keypoints, (), ((0, 1),))
    assert schema_conflict(a, other_skeleton) is None
    swapped = LabelSchema("landmarks", "a", ("snout", "rightear", "leftear"))
    assert schema_conflict(a, swapped) == (
        "the source has the project's 3 keypoints in another order (keypoint 1 is 'leftear' in "
        "the project, 'rightear' in the source)")
    more = LabelSchema("landmarks", "a", (*a.keypoints, "tail"))
    assert schema_conflict(a, more) == ("the project has 3 keypoints, the source 4; "
                                        "only in the source: tail")
    assert schema_conflict(a, LabelSchema("age")) == (
        "the project holds landmarks labels, the source has age")
    assert describe_schema(a) == ["keypoints  3 (a): snout, leftear, rightear",
                                  "flip pairs leftear/rightear", "skeleton   none"]


def test_import_keeps_the_project_schema_when_only_the_skeleton_differs(tmp_path):
    write_png(tmp_path / "a.png")
    (tmp_path / "one").mkdir()
    for i, edge in enumerate(([[1, 2]], [[1, 3]])):
        doc = {"images": [{"id": 1, "file_name": "a.png"}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                "keypoints": [1, 2, 2, 3, 4, 2, 5, 6, 2]}],
               "categories": [{"id": 1, "name": f"c{i}", "keypoints": ["l_a", "r_a", "b"],
                               "skeleton": edge}]}
        (tmp_path / f"k{i}.json").write_text(json.dumps(doc))
    with Project.open_or_create(tmp_path / "p.gumshoe") as project:
        first = import_source(project, tmp_path / "k0.json", workers=1)
        assert first.new_schema and first.schema.flip_pairs == ((0, 1),)
        second = import_source(project, tmp_path / "k1.json", workers=1)
        assert not second.new_schema and project.schema.skeleton == ((0, 1),)
        assert second.schema == project.schema


def test_age_csv_task_comes_from_the_header(tmp_path):
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=1)
    (tmp_path / "ages.csv").write_text("image,age\na.png,31\nb.png,4.5\n")
    with Project.open_or_create(tmp_path / "p.gumshoe") as project:
        result = import_source(project, tmp_path / "ages.csv", workers=1)  # no task named
        assert result.task == "age" and result.added == 2 and project.schema.task == "age"
    (tmp_path / "pts.csv").write_text("image,x0,y0\na.png,1,2\n")
    with Project.open_or_create(tmp_path / "q.gumshoe") as project:
        assert import_source(project, tmp_path / "pts.csv", workers=1).task == "landmarks"
        with pytest.raises(ProjectError, match="holds landmarks labels, the source has age"):
            import_source(project, tmp_path / "ages.csv", workers=1)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_import_shows_the_schema_and_info_lists_it(dataset, tmp_path):
    project = tmp_path / "of.gumshoe"
    proc = _cli("import", project, dataset("dlc-openfield"))
    assert proc.returncode == 0, proc.stderr
    assert "  flip pairs leftear/rightear" in proc.stdout.splitlines()
    assert "  keypoints  4 (openfield): snout, leftear, rightear, tailbase" in proc.stdout
    again = _cli("import", project, dataset("dlc-openfield"))
    assert "flip pairs" not in again.stdout  # shown when the project gets its schema
    info = _cli("info", project)
    assert "  flip pairs leftear/rightear" in info.stdout.splitlines()
    assert "  skeleton   none" in info.stdout.splitlines()
    doc = json.loads(_cli("info", project, "--json").stdout)
    assert doc["keypoint_names"] == ["snout", "leftear", "rightear", "tailbase"]
    assert doc["flip_pairs"] == [[1, 2]] and doc["skeleton"] == []
    bad = _cli("import", project, dataset("dlc-reaching"))
    assert bad.returncode != 0
    (line,) = bad.stderr.strip().splitlines()
    assert "only in the source: Hand, Finger1" in line
