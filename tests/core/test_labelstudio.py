"""Label Studio: JSON exports the test writes following Label Studio's task format and its
KeyPointLabels result parameters (x, y in percent of original_width/height; values
checked by hand in the comments), grouping by region and relation, JSON-MIN, the config
order, broken tasks, import through a real project, fuzzing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.formats import READERS, FormatError, RawItem, Skip, detect_format
from core.formats.labelstudio import instances
from tests.core.formats_util import import_new, read, skips_by_where, write_png


def kp(name: str, x: float, y: float, *, rid: str = "", parent: str | None = None,
       size: tuple[int, int] | None = (200, 100), rotation: int = 0) -> dict:
    r = {"id": rid or f"k-{name}-{x}", "type": "keypointlabels", "from_name": "kp",
         "to_name": "image", "image_rotation": rotation,
         "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [name]}}
    if size is not None:
        r["original_width"], r["original_height"] = size
    if parent is not None:
        r["parentID"] = parent
    return r


def rect(rid: str, x: float, y: float, w: float, h: float) -> dict:
    return {"id": rid, "type": "rectanglelabels", "from_name": "box", "to_name": "image",
            "original_width": 200, "original_height": 100, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                      "rectanglelabels": ["mouse"]}}


def task(tid: int, image: str, *results: dict, **extra) -> dict:
    return {"id": tid, "data": {"image": image},
            "annotations": [{"id": tid * 10, "result": list(results), "was_cancelled": False,
                             "updated_at": "2024-05-01T10:00:00Z"}], **extra}


TASKS = [
    # 200 x 100 px: nose (50 %, 25 %) -> (100, 25); left_eye (25 %, 10 %) -> (50, 10)
    {**task(1, "/data/upload/3/8f7e1a2b-frame1.png", kp("nose", 50, 25), kp("left_eye", 25, 10)),
     "annotations": [
         {"id": 9, "result": [kp("nose", 1, 1)], "was_cancelled": True},
         {"id": 10, "result": [kp("nose", 50, 25), kp("left_eye", 25, 10)],
          "updated_at": "2024-05-02T10:00:00Z"},
         {"id": 11, "result": [kp("nose", 2, 2)], "updated_at": "2024-05-01T10:00:00Z"}],
     "predictions": [{"result": [kp("nose", 3, 3)]}]},
    # two mice nested in rectangles: box (10 %, 10 %, 20 %, 40 %) -> x 20..60, y 10..50 px
    task(2, "/data/upload/3/0123abcd-frame2.png",
         rect("r1", 10, 10, 20, 40), kp("nose", 15, 20, parent="r1"),
         rect("r2", 60, 10, 20, 40), kp("nose", 65, 20, parent="r2"),
         kp("right_eye", 70, 30, parent="r2")),
    # joined by relations, as sleap-io writes them
    task(3, "/data/local-files/?d=sub/frame3.png", rect("a", 0, 0, 100, 100),
         kp("nose", 10, 10, rid="p1"), {"type": "relation", "from_id": "p1", "to_id": "a"}),
    # no image size: fractions, scaled by the importer once it decodes the frame
    task(4, "https://example.com/bucket/frame4.png", kp("nose", 50, 50, size=None)),
    task(5, "/data/upload/3/frame1.png", kp("nose", 1, 1), kp("nose", 2, 2)),
    task(6, "/data/upload/3/frame1.png", kp("nose", 1, 1, rotation=90)),
    task(7, "/data/upload/3/nowhere.png", kp("nose", 1, 1)),
    task(8, "/data/upload/3/frame1.png", kp("nose", "x", 1)),
    task(9, "/data/upload/3/../../../etc/passwd", kp("nose", 1, 1)),
    {"id": 10, "data": {"image": "/data/upload/3/frame1.png"}, "annotations": [],
     "predictions": [{"result": [kp("nose", 3, 3)]}]},
    {"id": 11, "data": {"image": "/data/upload/3/frame1.png"}, "annotations": []},
    "not a task",
]


def build(root):
    write_png(root / "images/frame1.png", 200, 100)
    write_png(root / "images/frame2.png", 200, 100, seed=1)
    write_png(root / "sub/frame3.png", 200, 100, seed=2)
    write_png(root / "frame4.png", 200, 100, seed=3)
    (root / "export.json").write_text(json.dumps(TASKS))
    return root / "export.json"


def test_export_with_regions_relations_and_broken_tasks(tmp_path):
    path = build(tmp_path)
    assert detect_format(path) == "labelstudio"
    schema = READERS["labelstudio"].schema(path, "landmarks")
    assert schema.keypoints == ("left_eye", "nose", "right_eye")  # natural order of names
    assert schema.flip_pairs == ((0, 2),)
    items, skips = read("labelstudio", path)
    assert [i.key for i in items] == ["images/frame1.png", "images/frame2.png#0",
                                      "images/frame2.png#1", "sub/frame3.png", "frame4.png"]
    np.testing.assert_allclose(items[0].points[:2], [[50, 10], [100, 25]])  # newest annotation
    assert items[0].visibility.tolist() == [2, 2, 0]
    assert items[1].box == pytest.approx((20, 10, 60, 50))
    np.testing.assert_allclose(items[1].points[1], [30, 20])
    np.testing.assert_allclose(items[2].points[1:], [[130, 20], [140, 30]])
    assert items[3].box == pytest.approx((0, 0, 200, 100))
    four = items[4]
    assert four.normalized and four.scaled(200, 100).points[1] == pytest.approx([100, 50])
    assert skips_by_where(skips) == {
        "export.json#task 5": "keypoint 'nose' appears twice in one instance "
                              "(no regions group the instances)",
        "export.json#task 6": "rotated image (image_rotation is not 0)",
        "export.json#task 7": "image not found: /data/upload/3/nowhere.png",
        "export.json#task 8": "nose x: not a number",
        "export.json#task 9": "image not found: /data/upload/3/../../../etc/passwd",
        "export.json#task 11": "task is not an object",
        "export.json": "2 tasks without an annotation (or only predictions or cancelled "
                       "ones) left out",
    }


def test_config_order_and_json_min(tmp_path):
    write_png(tmp_path / "a.png", 200, 100)
    (tmp_path / "config.xml").write_text(
        '<View><Image name="image" value="$image"/><KeyPointLabels name="kp" toName="image">'
        '<Label value="nose"/><Label value="left_eye"/><Label value="right_eye"/>'
        "</KeyPointLabels></View>")
    rows = [{"image": "/data/upload/1/a.png", "id": 1, "annotator": "ann",
             "kp": [{"x": 50, "y": 50, "width": 1, "keypointlabels": ["right_eye"],
                     "original_width": 200, "original_height": 100}]}]
    (tmp_path / "min.json").write_text(json.dumps(rows))
    schema = READERS["labelstudio"].schema(tmp_path / "min.json", "landmarks")
    assert schema.keypoints == ("nose", "left_eye", "right_eye")
    (item,), skips = read("labelstudio", tmp_path / "min.json")
    assert not skips and item.visibility.tolist() == [0, 0, 2]
    np.testing.assert_allclose(item.points[2], [100, 50])


def test_import_through_a_project(tmp_path):
    path = build(tmp_path)
    project, result = import_new(tmp_path / "p.gumshoe", path)
    assert result.format == "labelstudio" and result.added == 5 and len(result.skipped) == 7
    four = next(s for s in project.samples() if s.key == "frame4.png")
    np.testing.assert_allclose(project.current_label(four.id).points[1], [100, 50])


def test_unreadable_export_is_one_error(tmp_path):
    (tmp_path / "x.json").write_text('[{"keypointlabels": ')
    with pytest.raises(FormatError, match="x.json: not readable JSON"):
        READERS["labelstudio"].schema(tmp_path / "x.json", "landmarks")
    (tmp_path / "x.json").write_text('[{"id": 1, "annotations": [], "keypointlabels": 1}]')
    with pytest.raises(FormatError, match="no keypointlabels"):
        READERS["labelstudio"].schema(tmp_path / "x.json", "landmarks")


values = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(),
                   st.text(max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "id": st.sampled_from(["a", "b", "c", 1]),
    "type": st.sampled_from(["keypointlabels", "rectanglelabels", "relation", "other"]),
    "parentID": st.sampled_from(["a", "b", None]), "from_id": st.sampled_from(["a", "b"]),
    "to_id": st.sampled_from(["a", "c"]), "original_width": values, "original_height": values,
    "image_rotation": st.sampled_from([0, 90, None]),
    "value": st.one_of(values, st.fixed_dictionaries({
        "x": values, "y": values, "width": values, "height": values,
        "keypointlabels": st.one_of(values, st.lists(st.sampled_from(["n", "m", "z"]),
                                                     max_size=2))})),
}), max_size=6))
def test_instances_fuzz_only_raises_value_error(result):
    try:
        found = instances(result, {"n": 0, "m": 1})
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        for pts, vis, _box, _norm in found:
            assert pts.shape == (2, 2) and np.isfinite(pts[vis > 0]).all()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=False),
              st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=10)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    json_values,
    st.fixed_dictionaries({"id": json_values, "data": st.one_of(
        st.fixed_dictionaries({"image": st.sampled_from(["/data/upload/3/frame1.png",
                                                         "frame1.png", "../x.png", ""])}),
        json_values)},
        optional={"annotations": st.lists(st.fixed_dictionaries(
            {"result": st.lists(st.sampled_from([kp("nose", 10, 20), kp("left_eye", 5, 5),
                                                 rect("r", 0, 0, 50, 50)]), max_size=3)},
            optional={"was_cancelled": json_values, "updated_at": json_values,
                      "id": json_values}), max_size=2),
            "predictions": json_values})), max_size=4))
def test_export_file_fuzz_reads_or_raises_one_format_error(tmp_path, tasks):
    root = tmp_path / "fuzz"
    if not root.exists():
        write_png(root / "images/frame1.png", 200, 100)
    (root / "export.json").write_text(json.dumps(tasks))
    reader = READERS["labelstudio"]
    try:
        schema = reader.schema(root / "export.json", "landmarks")
        out = list(reader.read(root / "export.json", "landmarks"))
    except FormatError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
    else:
        for o in out:
            assert isinstance(o, RawItem | Skip)
            if isinstance(o, RawItem):
                assert o.points.shape == (schema.n_keypoints, 2)
