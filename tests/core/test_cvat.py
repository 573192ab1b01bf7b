"""CVAT for images 1.1: the example of CVAT's XML-format page (its skeleton s1, nodes
1-3, SVG edges 2-3 and 1-2, among a box, polygon, points, tag and mask) and more images
the test adds by hand (occluded and outside nodes, broken shapes), a points-only
file, refusals, round trips through a real project, fuzzing."""

from __future__ import annotations

import string
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.export import export
from core.export_target import ExportTargetError
from core.formats import READERS, FormatError, detect_format
from core.formats.cvat import parse_points
from core.schemas import landmarks_schema
from tests.core.formats_util import (
    assert_same,
    labels,
    read,
    round_trip,
    skips_by_where,
    write_png,
)

SVG = ('&lt;line x1="36.87" y1="47.73" x2="86.87" y2="10.77" stroke="black" data-type="edge" '
       'data-node-from="2" stroke-width="0.5" data-node-to="3"&gt;&lt;/line&gt;'
       '&lt;line x1="25.16" y1="22.64" x2="36.87" y2="47.73" stroke="black" data-type="edge" '
       'data-node-from="1" stroke-width="0.5" data-node-to="2"&gt;&lt;/line&gt;'
       + "".join(f'&lt;circle r="1.5" stroke="black" fill="#b3b3b3" cx="1" cy="2" '
                 f'stroke-width="0.1" data-type="element node" data-element-id="{i}" '
                 f'data-node-id="{i}" data-label-name="{i}"&gt;&lt;/circle&gt;' for i in (1, 2, 3)))


def node(label: str, x: float, y: float, occluded: int = 0, outside: int = 0) -> str:
    return (f'<points label="{label}" occluded="{occluded}" source="manual" outside="{outside}" '
            f'points="{x},{y}"></points>')


XML = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><id>4</id><name>segmentation</name><size>27</size><mode>annotation</mode>
    <labels>
      <label><name>car</name><attributes></attributes></label>
      <label><name>wheel</name><attributes></attributes></label>
      <label><name>s1</name><type>skeleton</type><attributes></attributes><svg>{SVG}</svg></label>
      <label><name>1</name><type>points</type><attributes></attributes><parent>s1</parent></label>
      <label><name>2</name><type>points</type><attributes></attributes><parent>s1</parent></label>
      <label><name>3</name><type>points</type><attributes></attributes><parent>s1</parent></label>
    </labels></task></meta>
  <image id="0" name="filename000.jpg" width="1600" height="1200">
    <box label="plate" xtl="797.33" ytl="870.92" xbr="965.52" ybr="928.94" occluded="0" z_order="4"></box>
    <polygon label="car" points="561.30,916.23;561.30,842.77;554.72,761.63" occluded="0" z_order="1"></polygon>
    <points label="wheel" points="574.90,939.48;1170.16,907.90;1130.69,445.26;600.16,459.48" occluded="0" z_order="5"></points>
    <tag label="good_frame" source="manual"></tag>
    <skeleton label="s1" source="manual" z_order="0">
      {node("1", 54.47, 94.81)}{node("2", 68.02, 162.34)}{node("3", 125.87, 62.85)}
    </skeleton>
    <mask label="car" source="manual" occluded="0" rle="3, 5, 7" left="707" top="888" width="13" height="15" z_order="0"></mask>
  </image>
  <image id="1" name="sub/two.png" width="64" height="48">
    <skeleton label="s1" source="manual" z_order="0">
      {node("1", 1.5, 2.5, occluded=1)}{node("2", 9, 9, outside=1)}{node("3", 3, 4)}
    </skeleton>
    <skeleton label="s1" source="manual" z_order="0">{node("3", 30.25, 40)}</skeleton>
    <skeleton label="s1" source="manual" z_order="0">{node("9", 1, 1)}</skeleton>
    <skeleton label="s1" source="manual" z_order="0">{node("1", 1, 1)}{node("1", 2, 2)}</skeleton>
    <skeleton label="s1" source="manual" z_order="0">{node("2", "a", 1)}</skeleton>
    <skeleton label="s1" source="manual" z_order="0">{node("2", 1, 1, outside=1)}</skeleton>
    <skeleton label="s1" source="manual" z_order="0"><points label="1" outside="2" points="1,1"></points></skeleton>
  </image>
  <image id="2" name="gone.png" width="64" height="48">
    <skeleton label="s1" source="manual" z_order="0">{node("1", 1, 1)}</skeleton>
  </image>
  <image id="3" name="../../etc/x.png" width="64" height="48">
    <skeleton label="s1" source="manual" z_order="0">{node("1", 1, 1)}</skeleton>
  </image>
  <image id="4" name="empty.png" width="64" height="48"></image>
</annotations>
"""


def build(root: Path, xml: str = XML) -> Path:
    write_png(root / "images/filename000.jpg", 160, 120)
    write_png(root / "images/sub/two.png")
    write_png(root / "images/empty.png")
    (root / "annotations.xml").write_text(xml)
    return root


def test_cvat_example_and_broken_shapes(tmp_path):
    root = build(tmp_path / "task")
    for source in (root, root / "annotations.xml"):
        assert detect_format(source) == "cvat"
        assert READERS["cvat"].root(source) == root / "images"
    schema = READERS["cvat"].schema(root, "landmarks")
    assert schema.keypoints == ("1", "2", "3") and schema.name == "s1"
    assert set(schema.skeleton) == {(1, 2), (0, 1)}  # the SVG's edges 2-3 and 1-2
    items, skips = read("cvat", root)
    assert [i.key for i in items] == ["filename000.jpg", "sub/two.png#0", "sub/two.png#1"]
    np.testing.assert_array_equal(items[0].points, [[54.47, 94.81], [68.02, 162.34],
                                                    [125.87, 62.85]])
    assert items[0].visibility.tolist() == [2, 2, 2]
    two = items[1]
    assert two.visibility.tolist() == [1, 0, 2] and np.isnan(two.points[1]).all()
    np.testing.assert_array_equal(two.points[[0, 2]], [[1.5, 2.5], [3, 4]])
    assert items[2].visibility.tolist() == [0, 0, 2]  # absent nodes are missing
    assert skips_by_where(skips) == {
        "sub/two.png#2": "node '9' is not in the skeleton",
        "sub/two.png#3": "node '1' appears twice",
        "sub/two.png#4": "point 0 x: not a number: 'a'",
        "sub/two.png#5": "no labelled point (all outside)",
        "sub/two.png#6": "outside must be 0 or 1, found '2'",
        "gone.png": "image missing: gone.png",
        "../../etc/x.png": "path '../../etc/x.png' leaves the dataset folder",
    }


def test_points_shapes(tmp_path):
    xml = """<annotations><version>1.1</version><meta/>
      <image id="0" name="a.png" width="64" height="48">
        <points label="face" occluded="1" points="1,2;3,4;5,6"></points>
        <points label="face" occluded="0" points="1,2;3,4"></points>
        <points label="other" points="1,2"></points>
        <box label="face" xtl="0" ytl="0" xbr="5" ybr="5"></box>
      </image></annotations>"""
    write_png(tmp_path / "a.png")
    (tmp_path / "x.xml").write_text(xml)
    assert detect_format(tmp_path / "x.xml") == "cvat"
    assert READERS["cvat"].schema(tmp_path / "x.xml", "landmarks") == landmarks_schema(3)
    items, skips = read("cvat", tmp_path / "x.xml")
    assert [i.key for i in items] == ["a.png#0"] and items[0].visibility.tolist() == [1, 1, 1]
    assert skips_by_where(skips) == {"a.png#1": "3 points expected, found 2"}


@pytest.mark.parametrize(("xml", "problem"), [
    ("<annotations><version>1.1</version><track id='0' label='s1'/></annotations>",
     "CVAT for video"),
    ("<annotations><image name='a.png'><box label='x'/></image></annotations>",
     "no <skeleton> or <points> shapes"),
    ("<dataset/>", "not a CVAT file"),
    ("<annotations><image", "not readable XML"),
    ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY a{i} "{("&a;" if i == 1 else f"&a{i - 1};") * 10}">' for i in range(1, 9))
     + "]><annotations>&a8;</annotations>", "not readable XML"),  # entity expansion bomb
])
def test_unreadable_files_are_one_clear_error(tmp_path, xml, problem):
    (tmp_path / "annotations.xml").write_text(xml)
    with pytest.raises(FormatError, match=problem):
        READERS["cvat"].schema(tmp_path, "landmarks")


def test_round_trip_through_a_project(tmp_path):
    root = build(tmp_path / "task")

    def fix(project):
        s = next(s for s in project.samples() if s.key == "sub/two.png#0")
        pts = project.current_label(s.id).points.copy()
        pts[1] = (7.125, 8.5)
        project.add_label(s.id, points=pts, visibility=np.array([1, 2, 2]), author="ann")

    first, second, out = round_trip(tmp_path, root, "cvat", "cvat", "out", fix,
                                    clean_source=False)
    assert_same(labels(first), labels(second))
    assert second.schema == first.schema
    doc = ET.parse(out / "annotations.xml").getroot()
    assert doc.findtext("version") == "1.1"
    names = [lab.findtext("name") for lab in doc.iter("label")]
    assert names == ["s1", "1", "2", "3"]
    image = doc.find("image[@name='sub/two.png']")
    assert (image.get("width"), image.get("height")) == ("64", "48")
    nodes = image.find("skeleton").findall("points")
    assert [(p.get("occluded"), p.get("outside")) for p in nodes] == [("1", "0"), ("0", "0"),
                                                                     ("0", "0")]
    assert nodes[1].get("points") == "7.125,8.5"


def test_xml_only_export_and_export_from_dlc(dataset, tmp_path):
    first, second, out = round_trip(tmp_path, dataset("dlc-reaching"), "dlc", "cvat", "c")
    assert_same(labels(first), labels(second))
    assert second.schema.keypoints == first.schema.keypoints
    assert second.schema.skeleton == first.schema.skeleton  # through the SVG
    export(first, tmp_path / "only.xml", "cvat")
    doc = ET.parse(tmp_path / "only.xml").getroot()
    assert doc.find("image").get("name").startswith("labeled-data/reachingvideo1/")
    missing = doc.findall(".//points[@label='Tongue'][@outside='1']")
    assert len(missing) == sum(1 for v in labels(first).values() if v[1][2] == 0)
    with pytest.raises(ExportTargetError, match="folder is not empty"):
        export(first, out, "cvat")
    export(first, out, "cvat", overwrite=True)  # a CVAT export folder may replace its like
    assert sorted(p.name for p in out.iterdir()) == ["annotations.xml", "images"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.digits + ",;.-e+ nax", max_size=60))
def test_parse_points_fuzz(text):
    try:
        pts = parse_points(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert pts.ndim == 2 and pts.shape[1] == 2 and np.isfinite(pts).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([
    "<image name='a.png'>", "</image>", "<skeleton label='s'>", "</skeleton>",
    "<points label='n' points='1,2'/>", "<points label='m' outside='1' points='1,2'/>",
    "<points label='n' points='x'/>", "<points label='n' occluded='7' points='1,2'/>",
    "<track/>", "<box/>", "<labels><label><name>n</name><parent>s</parent></label></labels>",
]), max_size=12))
def test_cvat_file_fuzz_raises_only_format_error(tmp_path_factory, parts):
    folder = tmp_path_factory.mktemp("fz")
    write_png(folder / "a.png")
    (folder / "annotations.xml").write_text("<annotations>" + "".join(parts) + "</annotations>")
    try:
        out = list(READERS["cvat"].read(folder, "landmarks"))
    except FormatError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(hasattr(o, "key") or hasattr(o, "reason") for o in out)
