"""DeepLabCut: the two real example projects, a multi-animal project the test builds
(CSV in DeepLabCut 2.3's three-column index layout, .h5 written by pandas the way
DeepLabCut writes it, Windows paths), broken rows, the writer read back by pandas
the way DeepLabCut reads it, and import -> export -> import round trips."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.export import export
from core.export_target import ExportTargetError
from core.formats import READERS, FormatError, RawItem, Skip, detect_format
from core.formats.dlc import DlcReader, Table, _table_items, parse_csv
from core.project import ProjectError
from core.schemas import schema_for_keypoints
from tests.core.formats_util import (
    assert_same,
    import_new,
    labels,
    read,
    round_trip,
    skips_by_where,
    write_png,
)

# ----------------------------------------------------------------------------- real projects


def test_openfield_project(dataset):
    root = dataset("dlc-openfield")
    assert detect_format(root) == "dlc"
    schema = READERS["dlc"].schema(root, "landmarks")
    assert schema.keypoints == ("snout", "leftear", "rightear", "tailbase")
    assert schema.flip_pairs == ((1, 2),) and schema.skeleton == () and schema.name == "openfield"
    items, skips = read("dlc", root)
    assert len(items) == 116 and not skips
    first = items[0]
    assert first.key == "labeled-data/m4s1/img0000.png"
    assert first.image.resolve() == (root / "labeled-data/m4s1/img0000.png").resolve()
    np.testing.assert_allclose(first.points, [[21.521, 265.428], [33.819, 265.941],
                                              [19.984, 250.056], [87.11, 152.698]])
    assert all((i.visibility == 2).all() for i in items)


def test_reaching_project_empty_cells_are_missing(dataset):
    root = dataset("dlc-reaching")
    schema = READERS["dlc"].schema(root, "landmarks")
    assert schema.keypoints == ("Hand", "Finger1", "Tongue", "Joystick1", "Joystick2")
    assert schema.skeleton == ((0, 1), (3, 4)) and schema.flip_pairs == ()
    items, skips = read("dlc", root)
    assert len(items) == 55 and not skips
    csv_path = root / "labeled-data/reachingvideo1/CollectedData_Mackenzie.csv"
    empty_cells = sum(line.count(",,") + line.endswith(",") for line in
                      csv_path.read_text().splitlines()[3:])
    missing = sum(int((i.visibility == 0).sum()) for i in items)
    assert missing * 2 >= empty_cells > 0
    nan_in_h5 = int(pd.read_hdf(csv_path.with_suffix(".h5")).isna().to_numpy().sum())
    assert missing * 2 == nan_in_h5
    assert all(((i.visibility == 0) == np.isnan(i.points).all(axis=1)).all() for i in items)
    assert items[0].visibility.tolist() == [2, 2, 0, 2, 2]  # img005: no tongue


@pytest.mark.parametrize("name", ["dlc-openfield", "dlc-reaching"])
def test_the_csv_and_the_h5_give_the_same_labels(dataset, name):
    root = dataset(name)
    (h5,) = root.glob("labeled-data/*/CollectedData_*.h5")
    for path in (h5, h5.with_suffix(".csv")):
        assert detect_format(path) == "dlc"
        assert READERS["dlc"].root(path) == root
    a, _ = read("dlc", h5)
    b, _ = read("dlc", h5.with_suffix(".csv"))
    assert [i.key for i in a] == [i.key for i in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.points, y.points, atol=1e-9)


# ----------------------------------------------------------------------------- built projects

MA_CONFIG = {
    "Task": "mice", "scorer": "Ann", "multianimalproject": True,
    "individuals": ["mouse1", "mouse2"], "uniquebodyparts": ["corner"],
    "multianimalbodyparts": ["snout", "left_ear", "right_ear", "tail"], "bodyparts": "MULTI!",
    "skeleton": [["snout", "left_ear"], ["snout", "right_ear"], ["left_ear", "nowhere"]],
}
HEAD = ("scorer,,," + ",".join(["Ann"] * 18) + "\n"
        "individuals,,," + ",".join(["mouse1"] * 8 + ["mouse2"] * 8 + ["single"] * 2) + "\n"
        "bodyparts,,," + ",".join(f"{b},{b}" for b in ["snout", "left_ear", "right_ear", "tail"] * 2
                                  + ["corner"]) + "\n"
        "coords,,," + ",".join(["x,y"] * 9) + "\n")
ROWS = [
    "labeled-data,v1,img000.png,10,11,12,13,14,15,16,17,20,21,22,23,24,25,,,1,2",
    "labeled-data,v1,img001.png,30,31,32,33,34,35,36,37,,,,,,,,,1,2",
    "labeled-data,v1,img002.png,,,,,,,,,,,,,,,,,,",  # nobody labelled
    "labeled-data,v1,img003.png,abc,11,12,13,14,15,16,17,,,,,,,,,,",
    "labeled-data,v1,img009.png,10,11,12,13,14,15,16,17,,,,,,,,,,",  # no such frame
    "..,..,secret.png,10,11,12,13,14,15,16,17,,,,,,,,,,",  # leaves the project
    "labeled-data,v1,img004.png,40,41,42,43,44,45,46,47,50,,,,,,,,,",  # mouse2 half a point
    "labeled-data,v1,img004.png,1,2",
]


def build_ma_project(root: Path) -> Path:
    """A multi-animal DeepLabCut project: v1 as a DeepLabCut 2.3 CSV (three index columns),
    v2 as an .h5 written by pandas with a Windows path index and a stale CSV twin."""
    (root / "labeled-data").mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(MA_CONFIG))
    for i in range(6):
        write_png(root / f"labeled-data/v1/img{i:03d}.png", seed=i)
    (root / "secret.png").write_bytes(b"outside")
    (root / "labeled-data/v1/CollectedData_Ann.csv").write_text(HEAD + "\n".join(ROWS) + "\n")
    write_png(root / "labeled-data/v2/img000.png", seed=9)
    cols = pd.MultiIndex.from_product(
        [["Ann"], ["mouse1", "mouse2"], MA_CONFIG["multianimalbodyparts"], ["x", "y"]],
        names=["scorer", "individuals", "bodyparts", "coords"])
    data = np.full((1, 16), np.nan)
    data[0, :8] = np.arange(8) + 100.5
    df = pd.DataFrame(data, index=["labeled-data\\v2\\img000.png"], columns=cols)
    df.to_hdf(root / "labeled-data/v2/CollectedData_Ann.h5", key="df_with_missing",
              format="table", mode="w")
    (root / "labeled-data/v2/CollectedData_Ann.csv").write_text("stale, not read\n")
    return root


def test_multi_animal_project_one_sample_per_individual(tmp_path):
    root = build_ma_project(tmp_path / "proj")
    assert detect_format(root) == "dlc"
    schema = READERS["dlc"].schema(root, "landmarks")
    assert schema.keypoints == ("snout", "left_ear", "right_ear", "tail") and schema.name == "mice"
    assert schema.flip_pairs == ((1, 2),)
    assert schema.skeleton == ((0, 1), (0, 2))  # the edge to an unknown bodypart is left out
    items, skips = read("dlc", root)
    assert [i.key for i in items] == [
        "labeled-data/v1/img000.png#mouse1", "labeled-data/v1/img000.png#mouse2",
        "labeled-data/v1/img001.png#mouse1", "labeled-data/v1/img004.png#mouse1",
        "labeled-data/v2/img000.png#mouse1"]
    np.testing.assert_array_equal(items[0].points, [[10, 11], [12, 13], [14, 15], [16, 17]])
    assert np.isnan(items[1].points[3]).all() and items[1].visibility.tolist() == [2, 2, 2, 0]
    assert items[4].image == root / "labeled-data/v2/img000.png"  # Windows path, from the .h5
    np.testing.assert_array_equal(items[4].points.ravel(), np.arange(8) + 100.5)
    assert skips_by_where(skips) == {
        "labeled-data/v1/CollectedData_Ann.csv":
            "unique bodyparts not imported (a project holds one keypoint set): corner",
        "labeled-data/v1/CollectedData_Ann.csv:7": "labeled-data/v1/img002.png: no labelled point",
        "labeled-data/v1/CollectedData_Ann.csv:8": "snout x: not a number: 'abc'",
        "labeled-data/v1/CollectedData_Ann.csv:9": "image missing: labeled-data/v1/img009.png",
        "labeled-data/v1/CollectedData_Ann.csv:10": "path '../../secret.png' leaves the dataset folder",
        "labeled-data/v1/CollectedData_Ann.csv:11#mouse2": "snout: x and y must both be empty or both numbers",
        "labeled-data/v1/CollectedData_Ann.csv:12": "expected 21 cells, found 5",
    }
    assert "labeled-data/v2/CollectedData_Ann.h5" not in skips_by_where(skips)


def test_single_file_with_windows_paths_and_no_config(tmp_path):
    folder = tmp_path / "labeled-data" / "run1"
    for i in range(2):
        write_png(folder / f"img{i}.png", seed=i)
    path = folder / "CollectedData_Bo.csv"
    path.write_text("scorer,Bo,Bo,Bo,Bo\nbodyparts,nose,nose,tailL,tailL\ncoords,x,y,x,y\n"
                    "labeled-data\\run1\\img0.png,1.5,2.5,3,4\n"
                    "labeled-data\\run1\\img1.png,5,6,,\n")
    assert detect_format(path) == "dlc" and detect_format(tmp_path) == "dlc"
    assert READERS["dlc"].root(path) == tmp_path
    schema = READERS["dlc"].schema(path, "landmarks")
    assert schema.keypoints == ("nose", "tailL") and schema.name == "dlc"
    items, skips = read("dlc", path)
    assert not skips and [i.key for i in items] == ["labeled-data/run1/img0.png",
                                                    "labeled-data/run1/img1.png"]
    assert items[1].visibility.tolist() == [2, 0]
    # a moved project: the frames are found beside the table
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for p in folder.iterdir():
        (moved / p.name).write_bytes(p.read_bytes())
    again, skips = read("dlc", moved / "CollectedData_Bo.csv")
    assert not skips and [i.image for i in again] == [moved / "img0.png", moved / "img1.png"]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "not a DeepLabCut table"),
    ("scorer,a\ncoords,x\n", "not a DeepLabCut table"),
    ("scorer,a,a\nbodyparts,n,n\ncoords,x,z\n", "unknown coords z"),
    ("scorer,a,a\nbodyparts,n,m\ncoords,x,y\n", "has x but no y"),
    ("scorer,a,a,a\nbodyparts,n,n\ncoords,x,y\n", "different lengths"),
])
def test_broken_headers_name_the_file(tmp_path, text, problem):
    path = tmp_path / "CollectedData_x.csv"
    path.write_text(text)
    with pytest.raises(FormatError, match=problem):
        list(DlcReader().read(path, "landmarks"))


def test_broken_table_in_a_project_is_skipped_and_the_rest_read(tmp_path):
    root = tmp_path / "proj"
    (root / "labeled-data/a").mkdir(parents=True)
    (root / "labeled-data/b").mkdir(parents=True)
    (root / "config.yaml").write_text("scorer: S\nbodyparts: [nose]\n")
    write_png(root / "labeled-data/a/f.png")
    (root / "labeled-data/a/CollectedData_S.csv").write_text(
        "scorer,S,S\nbodyparts,nose,nose\ncoords,x,y\nlabeled-data/a/f.png,1,2\n")
    (root / "labeled-data/b/CollectedData_S.h5").write_bytes(b"not hdf5")
    items, skips = read("dlc", root)
    assert [i.key for i in items] == ["labeled-data/a/f.png"]
    (skip,) = skips
    assert skip.path == "labeled-data/b/CollectedData_S.h5"
    assert skip.reason.startswith("not a readable DeepLabCut .h5")
    (root / "config.yaml").write_text("scorer: [unclosed\n")
    with pytest.raises(FormatError, match="config.yaml: not readable YAML"):
        READERS["dlc"].schema(root, "landmarks")


def test_label_files_are_read_only_if_regular(tmp_path):
    import os

    root = tmp_path / "proj"
    (root / "labeled-data/a").mkdir(parents=True)
    os.mkfifo(root / "labeled-data/a/CollectedData_S.csv")  # would block a plain open()
    with pytest.raises(FormatError, match="CollectedData_S.csv: not a regular file"):
        list(DlcReader().read(root / "labeled-data/a/CollectedData_S.csv", "landmarks"))
    (root / "labeled-data/b").mkdir()
    (root / "labeled-data/b/CollectedData_S.csv").write_text(
        "scorer,S,S\nbodyparts,nose,nose\ncoords,x,y\nlabeled-data/b/f.png,1,2\n")
    write_png(root / "labeled-data/b/f.png")
    items, skips = read("dlc", root)
    assert [i.key for i in items] == ["labeled-data/b/f.png"]
    assert skips_by_where(skips) == {"labeled-data/a/CollectedData_S.csv": "not a regular file"}


# ----------------------------------------------------------------------------- writer


def _dlc_read_like_deeplabcut(path: Path) -> pd.DataFrame:
    """What DeepLabCut does with a CollectedData file: pd.read_hdf, then its
    guarantee_multiindex_rows (split the path index on / or \\ into three levels)."""
    df = pd.read_hdf(path)
    if not isinstance(df.index, pd.MultiIndex):
        sep = "/" if "/" in df.index[0] else "\\"
        df.index = pd.MultiIndex.from_tuples(tuple(df.index.str.split(sep)))
    return df


def test_export_is_a_project_deeplabcut_reads(dataset, tmp_path):
    src = dataset("dlc-reaching")

    def fix(project):
        s = project.samples()[3]
        pts = project.current_label(s.id).points.copy()
        pts[0] += (5.25, -1.5)
        project.add_label(s.id, points=pts, author="ann", note="hand")

    first, second, out = round_trip(tmp_path, src, "dlc", "dlc", "clean", fix)
    assert_same(labels(first), labels(second))
    h5 = out / "labeled-data/reachingvideo1/CollectedData_Mackenzie.h5"
    theirs = pd.read_hdf(src / "labeled-data/reachingvideo1/CollectedData_Mackenzie.h5")
    ours = pd.read_hdf(h5)
    with pd.HDFStore(h5, "r") as store:
        assert store.keys() == ["/df_with_missing"]
    assert ours.columns.names == ["scorer", "bodyparts", "coords"]
    assert ours.columns.equals(theirs.columns)  # same scorer, bodyparts, order
    assert list(ours.index) == list(theirs.index)  # same image paths
    assert ours.isna().equals(theirs.isna())
    key = first.samples()[3].key
    hand = [("Mackenzie", "Hand", "x"), ("Mackenzie", "Hand", "y")]
    moved = ours.loc[key, hand].to_numpy() - theirs.loc[key, hand].to_numpy()
    np.testing.assert_allclose(moved, [5.25, -1.5], atol=1e-4)
    # the CSV twin is the table DeepLabCut writes beside it, byte layout included
    csv = pd.read_csv(h5.with_suffix(".csv"), header=[0, 1, 2], index_col=0)
    assert csv.columns.equals(ours.columns)
    np.testing.assert_allclose(csv.to_numpy(), ours.to_numpy(), equal_nan=True)
    assert h5.with_suffix(".csv").read_text().splitlines()[0] == (
        "scorer," + ",".join(["Mackenzie"] * 10))
    # pandas 1.x/2.x (DeepLabCut's) read a table by its pandas_version stamp, which
    # pandas 3 no longer writes: every attribute of DeepLabCut's own file is in ours
    import tables

    def attrs(path: Path) -> dict[str, object]:
        with tables.open_file(path) as f:
            node = f.get_node("/df_with_missing")
            return {a: getattr(node._v_attrs, a) for a in node._v_attrs._f_list("user")}

    real = attrs(src / "labeled-data/reachingvideo1/CollectedData_Mackenzie.h5")
    assert real.keys() - {"nan_rep"} <= attrs(h5).keys()
    assert attrs(h5)["pandas_version"] == "0.15.2"
    multi = _dlc_read_like_deeplabcut(h5)
    assert multi.index.nlevels == 3 and multi.index[0][:2] == ("labeled-data", "reachingvideo1")
    assert all((out / "/".join(p)).is_file() for p in multi.index)  # the frames are there
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["bodyparts"] == list(theirs.columns.get_level_values("bodyparts").unique())
    assert cfg["skeleton"] == [["Hand", "Finger1"], ["Joystick1", "Joystick2"]]
    assert cfg["scorer"] == "Mackenzie" and cfg["project_path"] == str(out.resolve())


def test_export_of_the_openfield_project_round_trips(dataset, tmp_path):
    first, second, out = round_trip(tmp_path, dataset("dlc-openfield"), "dlc", "dlc", "of")
    assert_same(labels(first), labels(second))
    assert second.schema == first.schema
    with pytest.raises(ExportTargetError, match="folder is not empty"):
        export(first, out, "dlc")
    export(first, out, "dlc", overwrite=True)  # an earlier DeepLabCut export is replaced
    assert yaml.safe_load((out / "config.yaml").read_text())["project_path"] == str(out.resolve())
    assert not [p for p in tmp_path.iterdir() if "gumshoe-tmp" in p.name or "gumshoe-old" in p.name]


def test_multi_animal_round_trip_and_layout(tmp_path):
    root = build_ma_project(tmp_path / "proj")
    first, result = import_new(tmp_path / "a.gumshoe", root, "dlc")
    assert len(result.skipped) == 7 and result.added == 5
    out = tmp_path / "ma"
    export(first, out, "dlc")
    df = pd.read_hdf(out / "labeled-data/v1/CollectedData_Ann.h5")
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(df.columns.get_level_values("individuals").unique()) == ["mouse1", "mouse2"]
    assert list(df.index) == [f"labeled-data/v1/img00{i}.png" for i in (0, 1, 4)]
    assert (out / "labeled-data/v1/CollectedData_Ann.csv").read_text().splitlines()[1].startswith(
        "individuals,mouse1,")
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["multianimalproject"] is True and cfg["individuals"] == ["mouse1", "mouse2"]
    assert cfg["multianimalbodyparts"] == ["snout", "left_ear", "right_ear", "tail"]
    second, again = import_new(tmp_path / "b.gumshoe", out, "dlc")
    assert_same(labels(first), labels(second))


def test_single_file_export_writes_both_twins(dataset, tmp_path):
    first, _ = import_new(tmp_path / "a.gumshoe", dataset("dlc-openfield"), "dlc")
    out = tmp_path / "labeled-data/m4s1/CollectedData_Pranav.h5"
    export(first, out, "dlc")
    a, b = pd.read_hdf(out), pd.read_csv(out.with_suffix(".csv"), header=[0, 1, 2], index_col=0)
    assert a.shape == b.shape == (116, 8) and a.index[0] == "labeled-data/m4s1/img0000.png"
    (tmp_path / "x.csv").write_text("mine")
    with pytest.raises(ExportTargetError, match="x.csv: already exists"):  # the twin is checked
        export(first, tmp_path / "x.h5", "dlc")
    assert (tmp_path / "x.csv").read_text() == "mine" and not (tmp_path / "x.h5").exists()
    export(first, tmp_path / "x.h5", "dlc", overwrite=True)
    assert pd.read_csv(tmp_path / "x.csv", header=[0, 1, 2], index_col=0).shape == (116, 8)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x.")) == [
        "x.changes.csv", "x.changes.json", "x.csv", "x.h5"]  # no temporary name left


def test_export_from_another_format_makes_video_folders(tmp_path):
    src = tmp_path / "src"
    rows = ["image,x0,y0,x1,y1"]
    for i, sub in enumerate(["a", "a", "b/c"]):
        write_png(src / sub / f"f{i}.png", seed=i)
        rows.append(f"{sub}/f{i}.png,{i + 1.25},{i + 2},{i + 3},{i + 4}")
    (src / "l.csv").write_text("\n".join(rows) + "\n")
    first, second, out = round_trip(tmp_path, src / "l.csv", "csv", "dlc", "proj")
    assert sorted(p.parent.name for p in out.glob("labeled-data/*/CollectedData_gumshoe.h5")) == [
        "a", "b-c"]
    assert sorted(labels(second)) == ["labeled-data/a/f0.png", "labeled-data/a/f1.png",
                                      "labeled-data/b-c/f2.png"]
    np.testing.assert_allclose(labels(second)["labeled-data/a/f1.png"][0], [[2.25, 3], [4, 5]])
    assert second.schema.keypoints == first.schema.keypoints


def test_import_into_a_project_with_other_keypoints_is_one_clear_error(dataset, tmp_path):
    project, _ = import_new(tmp_path / "p.gumshoe", dataset("dlc-openfield"))
    with pytest.raises(ProjectError) as err:
        import_new(tmp_path / "p.gumshoe", dataset("dlc-reaching"))
    text = str(err.value)
    assert "\n" not in text and "dlc-reaching" in text
    assert "the project has 4 keypoints, the source 5; only in the source: Hand" in text
    assert len(project.samples()) == 116


# ----------------------------------------------------------------------------- fuzz

CSV_ALPHABET = string.digits + ",.-\n\\/ nax" + "scorerbodypartscoordsxyindividuals"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(alphabet=CSV_ALPHABET, max_size=300),
    st.lists(st.sampled_from(["1", "", "nan", "abc", "1e400", "-3.5", '"', "..", "a/b.png",
                              "labeled-data", "\\x"]), max_size=12).map(
        lambda cells: "scorer,s,s,s,s\nbodyparts,a,a,b,b\ncoords,x,y,x,y\n" + ",".join(cells)),
    st.text(max_size=200)))
def test_dlc_csv_fuzz_raises_only_format_error(tmp_path, text):
    write_png(tmp_path / "a" / "b.png") if not (tmp_path / "a" / "b.png").exists() else None
    path = tmp_path / "CollectedData_s.csv"
    path.write_text(text, newline="")
    try:
        table = parse_csv(path, text)
    except FormatError as exc:
        assert "\n" not in str(exc).strip()
        return
    assert isinstance(table, Table)
    schema = schema_for_keypoints(list(dict.fromkeys(bp for _, bp, _ in table.columns)))
    out = list(_table_items(table, schema, tmp_path))
    assert all(isinstance(o, RawItem | Skip) for o in out)
    assert all(isinstance(o, Skip) or np.isfinite(o.points[o.visibility > 0]).all() for o in out)


def test_sleap_io_reads_our_export_as_deeplabcut(dataset, tmp_path):
    """An independent reader of DeepLabCut tables (sleap-io's) sees the same points."""
    sio = pytest.importorskip("sleap_io")
    first, _ = import_new(tmp_path / "a.gumshoe", dataset("dlc-reaching"), "dlc")
    export(first, tmp_path / "out", "dlc")
    theirs = sio.load_dlc(str(tmp_path / "out/labeled-data/reachingvideo1/"
                              "CollectedData_Mackenzie.csv"))
    assert len(theirs.labeled_frames) == 55
    assert {(e.source.name, e.destination.name) for e in theirs.skeletons[0].edges} == {
        ("Hand", "Finger1"), ("Joystick1", "Joystick2")}  # from our config.yaml
    ours = labels(first)
    names = theirs.skeletons[0].node_names
    order = [first.schema.keypoints.index(n) for n in names]
    for lf in theirs.labeled_frames:
        key = "labeled-data/reachingvideo1/" + Path(lf.video.filename[lf.frame_idx]).name
        np.testing.assert_allclose(lf.instances[0].numpy(), ours[key][0][order], atol=1e-4)


def test_deeplabcut_through_coco_keeps_names_and_pairs(dataset, tmp_path):
    """The first 10 openfield frames copied into a project folder, exported as COCO
    beside them (image paths inside the folder), read back."""
    src = dataset("dlc-openfield")
    proj = tmp_path / "proj"
    (proj / "labeled-data/m4s1").mkdir(parents=True)
    (proj / "config.yaml").write_bytes((src / "config.yaml").read_bytes())
    lines = (src / "labeled-data/m4s1/CollectedData_Pranav.csv").read_text().splitlines()
    (proj / "labeled-data/m4s1/CollectedData_Pranav.csv").write_text(
        "\n".join(lines[:13]) + "\n")
    for line in lines[3:13]:
        name = line.split(",")[0]
        (proj / name).write_bytes((src / name).read_bytes())
    first, _ = import_new(tmp_path / "a.gumshoe", proj, "dlc")
    export(first, proj / "of.json", "coco")
    second, again = import_new(tmp_path / "b.gumshoe", proj / "of.json", "coco")
    assert again.added == 10 and not again.skipped

    def by_path(d):
        return {k.split("#")[0]: v for k, v in d.items()}

    assert_same(by_path(labels(first)), by_path(labels(second)))
    assert second.schema.keypoints == first.schema.keypoints
    assert second.schema.flip_pairs == ((1, 2),)  # from the names again


def test_writer_places_images_from_outside_their_root(tmp_path):
    """A sample stored with an absolute path (its image lay outside the source folder)
    goes to a video folder named after the image's folder, not to '/-...'."""
    from core.formats.dlc import write
    from core.project import Label, Sample

    img = write_png(tmp_path / "elsewhere" / "cam1" / "f.png")
    sample = Sample(1, 1, "k", str(img), 64, 48, None, "train", "", "unreviewed",
                    str(tmp_path / "root"))
    label = Label(1, 1, np.array([[1.0, 2.0], [np.nan, np.nan]]), np.array([2, 0]), None,
                  "import", "", "", "")
    schema = schema_for_keypoints(["a", "b"])
    assert write(tmp_path / "out", schema, [(sample, label)]) == 1
    df = pd.read_hdf(tmp_path / "out/labeled-data/cam1/CollectedData_gumshoe.h5")
    assert list(df.index) == ["labeled-data/cam1/f.png"]
    assert (tmp_path / "out/labeled-data/cam1/f.png").is_file()


def test_h5_with_multiindex_rows_as_deeplabcut_2_3_writes_it(tmp_path):
    folder = tmp_path / "labeled-data" / "v"
    write_png(folder / "a.png")
    cols = pd.MultiIndex.from_product([["S"], ["nose", "tail"], ["x", "y"]],
                                      names=["scorer", "bodyparts", "coords"])
    idx = pd.MultiIndex.from_tuples([("labeled-data", "v", "a.png")])
    pd.DataFrame([[1.0, 2.0, np.nan, np.nan]], index=idx, columns=cols).to_hdf(
        folder / "CollectedData_S.h5", key="df_with_missing", mode="w")  # fixed format
    (item,), skips = read("dlc", folder / "CollectedData_S.h5")
    assert not skips and item.key == "labeled-data/v/a.png"
    assert item.visibility.tolist() == [2, 0]
