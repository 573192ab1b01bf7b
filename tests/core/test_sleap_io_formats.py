"""YOLO-pose and COCO files written by another maintained tool, and ours read by it:
sleap-io (SLEAP's reader/writer, already a dependency) writes an Ultralytics dataset and
a COCO keypoint file from the real ``dlc-openfield`` labels, which Gumshoe imports; and
sleap-io reads Gumshoe's YOLO-pose and COCO exports back with the same points."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sleap_io", reason="sleap-io is a dependency (pip install -e .)")
import sleap_io as sio  # noqa: E402

from core.export import export  # noqa: E402
from core.formats import detect_format  # noqa: E402
from tests.core.formats_util import import_new, labels  # noqa: E402

NAMES = ("snout", "leftear", "rightear", "tailbase")


def dlc_truth(project) -> dict[str, dict[str, np.ndarray]]:
    """frame file name -> keypoint name -> (x, y), from the DeepLabCut import."""
    names = project.schema.keypoints
    return {Path(key).name: dict(zip(names, pts, strict=True))
            for key, (pts, _) in labels(project).items()}


def sio_points(lf, skeleton) -> dict[str, np.ndarray]:
    (inst,) = lf.instances
    return dict(zip(skeleton.node_names, inst.numpy(), strict=True))


def frame_name(lf) -> str:
    files = lf.video.filename
    return Path(files[lf.frame_idx] if isinstance(files, list) else files).name


def dlc_labels_in_sleap_io(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sio.load_dlc(str(root / "labeled-data/m4s1/CollectedData_Pranav.csv"))


def test_a_yolo_dataset_written_by_sleap_io_imports_with_its_points(dataset, tmp_path):
    root = dataset("dlc-openfield")
    truth_project, _ = import_new(tmp_path / "dlc.gumshoe", root, "dlc")
    truth = dlc_truth(truth_project)
    theirs = dlc_labels_in_sleap_io(root)
    frames = [frame_name(lf) for lf in theirs.labeled_frames]
    sio.save_ultralytics(theirs, str(tmp_path / "yolo"), split_ratios={"train": 1.0},
                         verbose=False)
    assert detect_format(tmp_path / "yolo") == "yolo-pose"
    project, result = import_new(tmp_path / "y.gumshoe", tmp_path / "yolo")
    assert result.format == "yolo-pose" and not result.skipped and result.added == 116
    # sleap-io's node order (its own, not the config's) and names come from data.yaml
    assert project.schema.keypoints == tuple(theirs.skeletons[0].node_names)
    # sleap-io names a frame by its index in the image sequence it read
    got = {}
    for s in project.samples():
        index = int(Path(s.path).stem)
        pts = project.current_label(s.id).points
        got[frames[index]] = dict(zip(project.schema.keypoints, pts, strict=True))
    assert got.keys() == truth.keys()
    for frame, points in truth.items():
        for name in NAMES:  # six decimals of a fraction of 640 x 480: 3.2e-4 px at most
            np.testing.assert_allclose(got[frame][name], points[name], atol=5e-4,
                                       err_msg=f"{frame} {name}")


def test_sleap_io_reads_our_yolo_export(dataset, tmp_path):
    first, _ = import_new(tmp_path / "a.gumshoe", dataset("dlc-openfield"), "dlc")
    truth = dlc_truth(first)
    out = tmp_path / "yolo"
    export(first, out, "yolo-pose")
    got = {}
    for split in ("train", "val"):
        if not (out / "images" / split).is_dir():
            continue
        back = sio.load_ultralytics(str(out), split=split)
        assert back.skeletons[0].node_names == list(NAMES)
        for lf in back.labeled_frames:
            got[frame_name(lf)] = sio_points(lf, back.skeletons[0])
    assert got.keys() == truth.keys()
    for frame, points in truth.items():
        for name in NAMES:
            np.testing.assert_allclose(got[frame][name], points[name], atol=5e-4,
                                       err_msg=f"{frame} {name}")


def test_a_coco_file_written_by_sleap_io_imports_with_its_points(dataset, tmp_path):
    root = dataset("dlc-openfield")
    truth_project, _ = import_new(tmp_path / "dlc.gumshoe", root, "dlc")
    truth = dlc_truth(truth_project)
    theirs = dlc_labels_in_sleap_io(root)
    coco = tmp_path / "coco"
    (coco / "images").mkdir(parents=True)
    names = [frame_name(lf) for lf in theirs.labeled_frames]
    for name in names:
        shutil.copy2(root / "labeled-data/m4s1" / name, coco / "images" / name)
    sio.save_coco(theirs, str(coco / "keypoints.json"), [f"images/{n}" for n in names])
    assert detect_format(coco / "keypoints.json") == "coco"
    project, result = import_new(tmp_path / "c.gumshoe", coco / "keypoints.json")
    assert not result.skipped and result.added == 116
    assert project.schema.keypoints == tuple(theirs.skeletons[0].node_names)
    for s in project.samples():
        points = dict(zip(project.schema.keypoints, project.current_label(s.id).points,
                          strict=True))
        for name in NAMES:
            np.testing.assert_allclose(points[name], truth[Path(s.path).name][name], atol=1e-4)


def test_sleap_io_reads_our_coco_export(dataset, tmp_path):
    first, _ = import_new(tmp_path / "a.gumshoe", dataset("dlc-reaching"), "dlc")
    truth = dlc_truth(first)
    export(first, tmp_path / "clean.json", "coco")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = sio.load_coco(str(tmp_path / "clean.json"))
    skeleton = back.skeletons[0]
    assert tuple(skeleton.node_names) == first.schema.keypoints
    assert len(back.labeled_frames) == len(truth) == 55
    for lf in back.labeled_frames:
        got = sio_points(lf, skeleton)
        want = truth[frame_name(lf)]
        for name, xy in want.items():  # the reaching project's empty cells stay missing
            np.testing.assert_allclose(got[name], xy, atol=1e-4, err_msg=f"{lf} {name}")
