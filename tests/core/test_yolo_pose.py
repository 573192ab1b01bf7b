"""YOLO-pose: a dataset the test writes by hand following Ultralytics' pose-dataset page
(values checked by hand below), broken lines, the 2-value layout, round trips through
a real project (the DeepLabCut set too), fuzzing."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.export import export
from core.export_target import ExportTargetError
from core.formats import READERS, FormatError, RawItem, Skip, detect_format
from core.formats.yolo_pose import label_path, parse_line
from core.schemas import COCO17
from tests.core.formats_util import (
    assert_same,
    import_new,
    labels,
    read,
    round_trip,
    skips_by_where,
    write_png,
)

DATA = {"path": ".", "train": "images/train", "val": "val.txt",
        "kpt_shape": [3, 3], "flip_idx": [1, 0, 2], "names": {0: "mouse"},
        "kpt_names": {0: ["left_ear", "right_ear", "nose"]}}


def build(root: Path) -> Path:
    """images 100 x 50 px. Line 1 of a.txt, checked by hand: box centre (0.5, 0.5), size
    (0.4, 0.6) -> x 30..70, y 10..40 px; left_ear (0.25, 0.2) visible -> (25, 10);
    right_ear (0.75, 0.2) occluded -> (75, 10); nose not labelled."""
    root.mkdir(parents=True)
    (root / "data.yaml").write_text(yaml.safe_dump(DATA))
    for name in ("train/a", "train/b", "train/c", "val/d"):
        write_png(root / "images" / f"{name}.png", 100, 50, seed=len(name))
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.4 0.6 0.25 0.2 2 0.75 0.2 1 0 0 0\n")
    (root / "labels/train/b.txt").write_text("\n".join([
        "0 0.2 0.2 0.2 0.2 0.1 0.1 2 0.3 0.1 2 0.2 0.3 2",
        "0 0.7 0.7 0.2 0.2 0.6 0.6 2 0.8 0.6 2 0.7 0.8 2",
        "0 0.5 0.5 0.2 0.2 0.1 0.1 2",  # too few numbers
        "0 0.5 0.5 0.2 0.2 0.1 0.1 3 0.3 0.1 2 0.2 0.3 2",  # visibility 3
        "0 0.5 0.5 0 0.2 0.1 0.1 2 0.3 0.1 2 0.2 0.3 2",  # no box
        "0 0.5 0.5 0.2 0.2 x 0.1 2 0.3 0.1 2 0.2 0.3 2",
        "0 0.5 0.5 0.2 0.2 0 0 0 0 0 0 0 0 0",  # nothing labelled
        "-1 0.5 0.5 0.2 0.2 0.1 0.1 2 0.3 0.1 2 0.2 0.3 2",
    ]) + "\n")
    (root / "labels/val").mkdir(parents=True)
    (root / "labels/val/d.txt").write_text("0 0.5 0.5 1 1 0.5 0.5 2 0.5 0.6 2 0.5 0.4 2\n")
    (root / "val.txt").write_text("./images/val/d.png\n../outside.png\nimages/val/gone.png\n")
    return root


def test_hand_built_dataset(tmp_path):
    root = build(tmp_path / "ds")
    for source in (root, root / "data.yaml"):
        assert detect_format(source) == "yolo-pose"
    schema = READERS["yolo-pose"].schema(root, "landmarks")
    assert schema.keypoints == ("left_ear", "right_ear", "nose") and schema.name == "mouse"
    assert schema.flip_pairs == ((0, 1),)
    items, skips = read("yolo-pose", root)
    assert [i.key for i in items] == ["images/train/a.png", "images/train/b.png#0",
                                      "images/train/b.png#1", "images/val/d.png"]
    a = items[0].scaled(100, 50)
    assert a.box == pytest.approx((30, 10, 70, 40))
    np.testing.assert_allclose(a.points[:2], [[25, 10], [75, 10]])
    assert np.isnan(a.points[2]).all() and a.visibility.tolist() == [2, 1, 0]
    assert skips_by_where(skips) == {
        "labels/train/b.txt:3": "expected 14 numbers (class, box, 3 keypoints x 3), found 8",
        "labels/train/b.txt:4": "visibility must be 0, 1 or 2",
        "labels/train/b.txt:5": "box: width and height must be positive",
        "labels/train/b.txt:6": "keypoint 0: not a number: 'x'",
        "labels/train/b.txt:7": "no labelled keypoint",
        "labels/train/b.txt:8": "class: not a class index: '-1'",
        "val.txt:2": "path '../outside.png' leaves the dataset folder",
        "val.txt:3": "image missing: images/val/gone.png",
        "data.yaml": "1 images without labels (backgrounds) left out",
    }


def test_import_scales_to_pixels(tmp_path):
    root = build(tmp_path / "ds")
    project, result = import_new(tmp_path / "p.gumshoe", root)
    assert result.added == 4 and result.format == "yolo-pose"
    a = next(s for s in project.samples() if s.key == "images/train/a.png")
    assert (a.width, a.height) == (100, 50) and a.box == pytest.approx((30, 10, 70, 40))
    np.testing.assert_allclose(project.current_label(a.id).points[:2], [[25, 10], [75, 10]])


def test_two_values_per_point_and_coco_names(tmp_path):
    root = tmp_path / "ds"
    flip = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # Ultralytics coco-pose
    (root / "images").mkdir(parents=True)
    (root / "d.yaml").write_text(yaml.safe_dump({"train": "images", "val": "images",
                                                 "kpt_shape": [17, 2], "flip_idx": flip}))
    write_png(root / "images/x.png", 10, 10)
    (root / "labels").mkdir()
    (root / "labels/x.txt").write_text("0 .5 .5 1 1 " + " ".join(["0 0"] + ["0.5 0.25"] * 16))
    assert READERS["yolo-pose"].schema(root, "landmarks") is COCO17
    (item,), _ = read("yolo-pose", root)
    assert item.visibility.tolist() == [0] + [2] * 16  # "0 0": not labelled


@pytest.mark.parametrize(("change", "problem"), [
    ({"kpt_shape": [3]}, "kpt_shape must be"),
    ({"kpt_shape": [3, 4]}, "kpt_shape must be"),
    ({"flip_idx": [1, 2, 0]}, "flip_idx is not its own inverse"),
    ({"flip_idx": [0, 1]}, "flip_idx must list 3"),
    ({"kpt_names": {0: ["a", "b"]}}, "kpt_names must list 3"),
    ({"kpt_names": {0: ["a", "a", "b"]}}, "named twice"),
])
def test_bad_yaml_is_one_clear_error(tmp_path, change, problem):
    root = build(tmp_path / "ds")
    (root / "data.yaml").write_text(yaml.safe_dump({**DATA, **change}))
    with pytest.raises(FormatError, match=problem):
        READERS["yolo-pose"].schema(root, "landmarks")


def test_label_path_follows_ultralytics():
    assert label_path(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path(Path("/images/d/images/x.png")) == Path("/images/d/labels/x.txt")
    assert label_path(Path("/d/frames/a.jpg")) == Path("/d/frames/a.txt")


def test_round_trip_keeps_labels_boxes_and_splits(tmp_path):
    root = build(tmp_path / "ds")

    def fix(project):
        s = next(s for s in project.samples() if s.key == "images/train/a.png")
        pts = project.current_label(s.id).points.copy()
        pts[2] = (51.125, 33.5)  # the annotator adds the nose
        project.add_label(s.id, points=pts, visibility=np.array([2, 1, 2]), author="ann")

    first, second, out = round_trip(tmp_path, root, "yolo-pose", "yolo-pose", "out", fix,
                                    clean_source=False)
    assert_same(labels(first), labels(second))  # same keys: images stay where they were
    assert len(labels(second)) == 4
    boxes = {s.key: s.box for s in first.samples()}
    for s in second.samples():
        np.testing.assert_allclose(s.box, boxes[s.key], atol=1e-4)
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["kpt_shape"] == [3, 3] and doc["flip_idx"] == [1, 0, 2]
    assert doc["kpt_names"] == {0: ["left_ear", "right_ear", "nose"]}
    assert (doc["train"], doc["val"]) == ("./images/train", "./images/val")  # the split is kept
    assert second.schema == first.schema
    assert (out / "labels/train/b.txt").read_text().count("\n") == 2  # two instances, one file


def test_openfield_round_trip_through_yolo(dataset, tmp_path):
    first, second, out = round_trip(tmp_path, dataset("dlc-openfield"), "dlc", "yolo-pose", "y")
    assert second.schema.keypoints == ("snout", "leftear", "rightear", "tailbase")
    assert second.schema.flip_pairs == ((1, 2),)
    a = {Path(k).name: v for k, v in labels(first).items()}
    b = {Path(k).name: v for k, v in labels(second).items()}
    assert_same(a, b)
    line = (out / "labels/train/img0000.txt").read_text().split()
    assert line[0] == "0" and len(line) == 5 + 4 * 3
    assert all(s.box is not None for s in second.samples())


def test_writer_refuses_a_folder_in_use(tmp_path):
    root = build(tmp_path / "ds")
    project, _ = import_new(tmp_path / "p.gumshoe", root)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(ExportTargetError, match="folder is not empty"):
        export(project, tmp_path / "busy", "yolo-pose")
    with pytest.raises(ExportTargetError, match="not replaced: it holds x"):
        export(project, tmp_path / "busy", "yolo-pose", overwrite=True)
    assert (tmp_path / "busy" / "x").read_text() == "x"
    export(project, tmp_path / "out", "yolo-pose")
    export(project, tmp_path / "out", "yolo-pose", overwrite=True)  # its own kind: replaced
    assert detect_format(tmp_path / "out") == "yolo-pose"


LINE_ALPHABET = string.digits + " .-e+nax\t"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=LINE_ALPHABET, max_size=120), st.text(max_size=60)),
       st.integers(1, 4), st.sampled_from([2, 3]))
def test_parse_line_fuzz_only_raises_value_error(line, k, dims):
    try:
        pts, vis, box = parse_line(line, k, dims)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert pts.shape == (k, 2) and vis.shape == (k,)
        assert np.isfinite(pts[vis > 0]).all() and np.isnan(pts[vis == 0]).all()
        assert box[2] > box[0] and box[3] > box[1]


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 20), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.one_of(st.integers(0, 2), st.text(max_size=4)),
                                            inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.fixed_dictionaries({}, optional={
    "path": yaml_values, "train": st.one_of(st.just("images/train"), yaml_values),
    "val": yaml_values, "kpt_shape": st.one_of(st.just([3, 3]), yaml_values),
    "flip_idx": st.one_of(st.just([1, 0, 2]), yaml_values), "names": yaml_values,
    "kpt_names": yaml_values, "node_names": yaml_values, "skeleton": yaml_values}))
def test_dataset_yaml_fuzz_reads_or_raises_one_format_error(tmp_path, doc):
    root = tmp_path / "fuzz"
    if not root.exists():
        build(root)
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    try:
        schema = READERS["yolo-pose"].schema(root, "landmarks")
        out = list(READERS["yolo-pose"].read(root, "landmarks"))
    except FormatError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
    else:
        assert schema.n_keypoints >= 1
        for o in out:
            assert isinstance(o, RawItem | Skip)
            if isinstance(o, RawItem):
                assert o.points.shape == (schema.n_keypoints, 2)


@pytest.mark.parametrize("path", ["x" * 5000, {"a": [1, 2]}])
def test_a_dataset_path_too_long_or_not_a_name_is_one_format_error_or_ignored(tmp_path, path):
    """Found by the fuzz test: a ``path`` longer than the system allows (or a mapping,
    whose text is that long) made ``is_dir`` raise OSError (ENAMETOOLONG)."""
    root = tmp_path / "ds"
    build(root)
    (root / "data.yaml").write_text(yaml.safe_dump({"path": path, "train": "images/train",
                                                    "kpt_shape": [3, 3]}))
    try:
        READERS["yolo-pose"].schema(root, "landmarks")
    except FormatError as exc:
        assert "path" in str(exc) and "\n" not in str(exc).strip()
