"""SLEAP: .slp files written by sleap-io in the test (an H.264 video written by
imageio-ffmpeg, the same labels embedded in a .pkg.slp, an image-sequence video), user
instances only, frames decoded once into the project's cache folder, broken input,
exports read back by sleap_io.load_file, round trips through real projects."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sio = pytest.importorskip("sleap_io")
iio = pytest.importorskip("imageio.v3")

from core.export import export  # noqa: E402
from core.export_target import ExportTargetError  # noqa: E402
from core.formats import READERS, FormatError, detect_format  # noqa: E402
from tests.core.formats_util import (  # noqa: E402
    assert_same,
    import_new,
    labels,
    round_trip,
    skips_by_where,
    write_png,
)

NODES = ["nose", "left_ear", "right_ear"]


def _skeleton():
    return sio.Skeleton(list(NODES), edges=[("nose", "left_ear"), ("nose", "right_ear")],
                        symmetries=[("left_ear", "right_ear")], name="mouse")


def _user(pts):
    return sio.Instance.from_numpy(np.array(pts, dtype=float), skeleton=SK)


def _pred(pts):
    return sio.PredictedInstance.from_numpy(np.array(pts, dtype=float), skeleton=SK,
                                            point_scores=np.ones(3), score=0.5)


SK = _skeleton()


def build(folder: Path) -> tuple[Path, Path, np.ndarray]:
    """clip.mp4 (12 frames, H.264) and m.slp / m.pkg.slp labelling frames 2, 5, 9
    (frame 5 with two mice, every frame with a prediction) and frame 7 with a
    prediction only."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 48, 64, 3), dtype=np.uint8)
    frames[:, :24] //= 4  # some structure so H.264 keeps it
    iio.imwrite(folder / "clip.mp4", frames, fps=10, codec="libx264", plugin="FFMPEG")
    video = sio.Video.from_filename(str(folder / "clip.mp4"))
    lfs = []
    for f in (2, 5, 9):
        insts = [_user([[f + 1.5, 2.25], [np.nan, np.nan], [30, 40.5]]),
                 _pred([[5, 5], [6, 6], [7, 7]])]
        if f == 5:
            insts.append(_user([[10, 10], [11, 11], [12, 12]]))
        lfs.append(sio.LabeledFrame(video=video, frame_idx=f, instances=insts))
    lfs.append(sio.LabeledFrame(video=video, frame_idx=7, instances=[_pred(np.ones((3, 2)))]))
    labels_ = sio.Labels(lfs)
    sio.save_slp(labels_, str(folder / "m.slp"), verbose=False)
    sio.save_slp(labels_, str(folder / "m.pkg.slp"), embed="user", verbose=False)
    return folder / "m.slp", folder / "m.pkg.slp", frames


@pytest.mark.parametrize("which", ["video", "embedded"])
def test_user_instances_and_frames(tmp_path, which):
    slp, pkg, _ = build(tmp_path / "src")
    source = slp if which == "video" else pkg
    assert detect_format(source) == "slp"
    schema = READERS["slp"].schema(source, "landmarks")
    assert schema.keypoints == tuple(NODES) and schema.name == "mouse"
    assert schema.flip_pairs == ((1, 2),) and set(schema.skeleton) == {(0, 1), (0, 2)}
    frames_dir = tmp_path / "frames"
    out = list(READERS["slp"].read(source, "landmarks", frames_dir=frames_dir))
    items = [o for o in out if hasattr(o, "key")]
    assert not [o for o in out if not hasattr(o, "key")]
    assert [i.key for i in items] == ["clip/2", "clip/5#0", "clip/5#1", "clip/9"]  # no preds
    np.testing.assert_array_equal(items[0].points[[0, 2]], [[3.5, 2.25], [30, 40.5]])
    assert items[0].visibility.tolist() == [2, 0, 2] and np.isnan(items[0].points[1]).all()
    assert items[1].image == items[2].image  # two mice, one frame file
    root = READERS["slp"].root(source, frames_dir)
    assert items[0].image == root / "clip/000002.png"
    # the frame on disk is what SLEAP shows for that frame
    shown = sio.load_slp(str(source)).labeled_frames[0].image
    ours = cv2.imread(str(items[0].image), cv2.IMREAD_UNCHANGED)
    ours = ours[:, :, ::-1] if ours.ndim == 3 else ours[:, :, None]
    np.testing.assert_array_equal(ours.reshape(shown.shape), shown)


def test_frames_are_decoded_once_and_restored_when_deleted(tmp_path):
    slp, _, _ = build(tmp_path / "src")
    project, result = import_new(tmp_path / "p.gumshoe", slp)
    assert result.format == "slp" and result.added == 4 and not result.skipped
    folder = READERS["slp"].root(slp, project.cache_dir / "frames")
    assert folder.parent == project.cache_dir / "frames"
    png = folder / "clip/000005.png"
    stamp = png.stat().st_mtime_ns
    _, again = import_new(tmp_path / "p.gumshoe", slp)
    assert again.added == 0 and again.existing == 4 and png.stat().st_mtime_ns == stamp
    png.unlink()
    _, again = import_new(tmp_path / "p.gumshoe", slp)
    assert png.is_file() and again.existing == 4


def test_missing_video_and_broken_files(tmp_path):
    slp, _, _ = build(tmp_path / "src")
    (tmp_path / "src" / "clip.mp4").rename(tmp_path / "src" / "elsewhere.mp4")
    out = list(READERS["slp"].read(slp, "landmarks", frames_dir=tmp_path / "f"))
    skips = [o for o in out if not hasattr(o, "key")]
    assert skips_by_where(skips) == {str(tmp_path / "src" / "clip.mp4"): (
        "video not found (also not beside the .slp): 3 labelled frames left out")}
    # a video moved beside the .slp is found by its name
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "src" / "elsewhere.mp4").rename(moved / "clip.mp4")
    slp.rename(moved / "m.slp")
    out = list(READERS["slp"].read(moved / "m.slp", "landmarks", frames_dir=tmp_path / "g"))
    assert len([o for o in out if hasattr(o, "key")]) == 4
    (tmp_path / "bad.slp").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(FormatError, match="bad.slp: not a readable SLEAP file"):
        READERS["slp"].schema(tmp_path / "bad.slp", "landmarks")
    (tmp_path / "text.slp").write_text("hello")
    assert not READERS["slp"].sniff(tmp_path / "text.slp")
    with pytest.raises(FormatError, match="needs a folder"):
        list(READERS["slp"].read(moved / "m.slp", "landmarks"))


def test_instances_without_visible_points_are_skipped(tmp_path):
    write_png(tmp_path / "a.png")
    video = sio.Video.from_filename([str(tmp_path / "a.png")])
    lf = sio.LabeledFrame(video=video, frame_idx=0, instances=[
        _user([[1, 2], [3, 4], [5, 6]]), _user(np.full((3, 2), np.nan))])
    sio.save_slp(sio.Labels([lf]), str(tmp_path / "s.slp"), verbose=False)
    out = list(READERS["slp"].read(tmp_path / "s.slp", "landmarks", frames_dir=tmp_path / "f"))
    assert [getattr(o, "key", None) for o in out] == ["a/0#0", None]
    assert skips_by_where([o for o in out if not hasattr(o, "key")]) == {
        "a/0#1": "no visible point"}


@pytest.mark.parametrize("which", ["video", "embedded"])
def test_export_is_a_slp_sleap_reads_with_the_fixes(tmp_path, which):
    slp, pkg, _ = build(tmp_path / "src")

    def fix(project):
        s = next(s for s in project.samples() if s.key == "clip/5#1")
        pts = project.current_label(s.id).points.copy()
        pts[0] = (20.125, 21.5)
        project.add_label(s.id, points=pts, author="ann", note="nose")

    first, second, out = round_trip(tmp_path, slp if which == "video" else pkg, "slp", "slp",
                                    "clean.slp", fix)
    assert_same(labels(first), labels(second))
    back = sio.load_file(str(out))
    assert [(lf.frame_idx, len(lf.instances)) for lf in back.labeled_frames] == [
        (2, 1), (5, 2), (9, 1)]
    assert all(type(i) is sio.Instance for lf in back.labeled_frames for i in lf.instances)
    np.testing.assert_allclose(back.labeled_frames[1].instances[1].numpy()[0], [20.125, 21.5])
    sk = back.skeletons[0]
    assert sk.node_names == NODES and sk.symmetry_inds == [(1, 2)]
    if which == "video":  # points at the source's video, same frame numbers
        assert Path(back.videos[0].filename) == tmp_path / "src" / "clip.mp4"
    else:  # frames embedded again, from the source file
        assert back.videos[0].backend.has_embedded_images
        assert back.labeled_frames[0].image.shape[:2] == (48, 64)


def test_export_from_deeplabcut_to_sleap(dataset, tmp_path):
    first, second, out = round_trip(tmp_path, dataset("dlc-openfield"), "dlc", "slp", "of.slp")
    back = sio.load_file(str(out))
    assert len(back.labeled_frames) == 116 and back.skeletons[0].node_names == [
        "snout", "leftear", "rightear", "tailbase"]
    assert back.skeletons[0].symmetry_inds == [(1, 2)]
    assert back.labeled_frames[0].image.shape[:2] == (480, 640)
    by_name = {Path(k).name.split("/")[-1]: v for k, v in labels(first).items()}
    got = {}
    for lf in back.labeled_frames:
        got[Path(lf.video.filename[lf.frame_idx]).name] = lf.instances[0].numpy()
    for name, (pts, _) in by_name.items():
        np.testing.assert_allclose(got[name], pts, atol=1e-4)
    assert len(labels(second)) == 116 and second.schema.keypoints == first.schema.keypoints
    with pytest.raises(ExportTargetError, match="already exists"):
        export(first, out, "slp")
    before = out.stat().st_mtime_ns
    export(first, out, "slp", overwrite=True)  # replaced whole, through a temporary .slp
    assert out.stat().st_mtime_ns != before and len(sio.load_file(str(out)).labeled_frames) == 116
    with pytest.raises(ValueError, match="a .slp file"):
        export(first, tmp_path / "x.h5", "slp")


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=400))
def test_slp_files_fuzz_raise_only_format_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "x.slp"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + data)
    try:
        out = list(READERS["slp"].read(path, "landmarks", frames_dir=path.parent / "f"))
    except FormatError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(hasattr(o, "key") or hasattr(o, "reason") for o in out)
