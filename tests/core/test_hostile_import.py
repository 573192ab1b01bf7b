"""One bad item never aborts or hangs an import; paths stay inside their source;
report lines cannot be forged; whole-source failures are one line (issue 10, items
4, 5, 12, 13). Every hostile file is built in a temporary folder (tests/core/hostile.py)
and every import runs as a real ``gumshoe`` process under a memory cap and a timeout."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.formats import RawItem, Skip, get_reader
from core.formats.base import FormatError
from core.formats.lsp import load_joints
from core.images import ImageError, Letterbox, letterbox, letterbox_for
from core.project import Project
from tests.core import hostile
from tests.core.hostile import gumshoe, no_traceback, skipped_lines


def _samples(project: Path) -> list:
    with Project.open(project) as p:
        return p.samples()


def test_hostile_pts_folder_skips_each_bad_item_once_and_imports_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    bad = hostile.hostile_pts_folder(src, good=4)
    t = time.monotonic()
    proc = gumshoe("import", tmp_path / "p.gumshoe", src, "--format", "pts", timeout=60)
    assert time.monotonic() - t < 60
    assert proc.returncode == 0, proc.stderr
    assert no_traceback(proc), proc.stderr
    lines = skipped_lines(proc)
    expect = {k: v for k, v in bad.items() if "newline" not in v}
    assert len(lines) == len(expect), proc.stderr
    for name in expect:
        assert sum(ln.startswith(f"skipped {name}") for ln in lines) == 1, (name, lines)
    by_name = {name: next(ln for ln in lines if ln.startswith(f"skipped {name}"))
               for name in expect}
    assert "not valid UTF-8" in by_name['"caf\\xe9.png"']
    assert "not a regular file (a FIFO)" in by_name["fifo.pts"]
    assert "outside the source folder through a symlink" in by_name["zero.pts"]
    assert "file too large" in by_name["huge.jpg"]
    assert "over the limit" in by_name["bomb.png"]
    assert "outside the source folder through a symlink" in by_name["secret.pts"]
    # the newline cannot start a line of its own
    assert not any(ln.startswith("skipped forged") for ln in proc.stderr.splitlines())
    keys = sorted(s.key for s in _samples(tmp_path / "p.gumshoe"))
    assert keys == ["evil\nskipped forged.jpg: fake.png", *(f"face{i}.png" for i in range(4))]
    assert f"{len(expect)} skipped" in proc.stdout


@pytest.mark.parametrize("fmt", ["csv", "coco"])
def test_bad_boxes_are_skipped_one_line_each(tmp_path: Path, fmt: str) -> None:
    build = hostile.csv_with_bad_boxes if fmt == "csv" else hostile.coco_with_bad_boxes
    source = build(tmp_path / "src", good=3)
    proc = gumshoe("import", tmp_path / "p.gumshoe", source, "--format", fmt, timeout=60)
    assert proc.returncode == 0 and no_traceback(proc), proc.stderr
    lines = skipped_lines(proc)
    assert len(lines) == len(hostile.BAD_BOXES), proc.stderr
    assert all("box" in ln for ln in lines), lines
    assert "3 added" in proc.stdout
    with Project.open(tmp_path / "p.gumshoe") as p:
        assert p.count_samples() == 3 and p.skipped_count() == len(hostile.BAD_BOXES)


def test_reading_a_fifo_or_device_never_blocks(tmp_path: Path) -> None:
    from core.paths import ReadError, read_regular

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ReadError, match="a FIFO"):
        read_regular(tmp_path / "fifo", 1000)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(ReadError, match="a device"):
        read_regular(tmp_path / "zero", 1000)
    (tmp_path / "big").write_bytes(b"x" * 1001)
    with pytest.raises(ReadError, match="too large"):
        read_regular(tmp_path / "big", 1000)
    with pytest.raises(ReadError, match="no such file") as exc:
        read_regular(tmp_path / "absent", 1000)
    assert exc.value.missing
    assert read_regular(tmp_path / "big", 2000) == b"x" * 1001


# ----------------------------------------------------------------------------- paths


def _outside_image(tmp_path: Path) -> Path:
    (tmp_path / "elsewhere").mkdir()
    hostile.png(tmp_path / "elsewhere" / "secret.png", 5)
    return tmp_path / "elsewhere" / "secret.png"


def test_csv_paths_outside_the_source_need_an_explicit_option(tmp_path: Path) -> None:
    secret = _outside_image(tmp_path)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    hostile.png(src / "sub" / "ok.png", 1)
    (src / "link.png").symlink_to(secret)
    rows = ["image,x0,y0", "sub/ok.png,3,4", "../elsewhere/secret.png,3,4", f"{secret},3,4",
            "link.png,3,4", "sub/../sub/ok.png,5,6"]
    (src / "l.csv").write_text("\n".join(rows) + "\n")
    proc = gumshoe("import", tmp_path / "p.gumshoe", src / "l.csv", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    lines = skipped_lines(proc)
    assert len(lines) == 3, lines
    assert all("outside the source folder" in ln for ln in lines)
    assert "a symlink" in lines[2] and "symlink" not in lines[0] + lines[1]
    assert all("--allow-outside-root" in ln for ln in lines)
    assert sorted(s.path for s in _samples(tmp_path / "p.gumshoe")) == ["sub/ok.png"] * 2
    proc = gumshoe("import", tmp_path / "q.gumshoe", src / "l.csv", "--format", "csv",
                   "--allow-outside-root")
    assert proc.returncode == 0 and not skipped_lines(proc), proc.stderr
    paths = sorted(s.path for s in _samples(tmp_path / "q.gumshoe"))
    assert paths == sorted([str(secret.resolve())] * 3 + ["sub/ok.png"] * 2)


def test_coco_and_dlib_paths_outside_the_source_are_skipped(tmp_path: Path) -> None:
    secret = _outside_image(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    hostile.png(src / "ok.png", 1)
    names = ["ok.png", "../elsewhere/secret.png", str(secret)]
    doc = {"images": [{"id": i + 1, "file_name": n} for i, n in enumerate(names)],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1,
                            "keypoints": [3, 4, 2]} for i in range(3)],
           "categories": [{"id": 1, "keypoints": ["a"]}]}
    (src / "a.json").write_text(json.dumps(doc))
    proc = gumshoe("import", tmp_path / "c.gumshoe", src / "a.json", "--format", "coco")
    assert proc.returncode == 0 and len(skipped_lines(proc)) == 2, proc.stderr
    assert [s.path for s in _samples(tmp_path / "c.gumshoe")] == ["ok.png"]
    parts = "".join(f"<part name='{i:02d}' x='3' y='4'/>" for i in range(2))
    xml = "".join(f"<image file='{n}'><box top='1' left='1' width='20' height='20'>{parts}"
                  "</box></image>" for n in names)
    (src / "d.xml").write_text(f"<dataset><images>{xml}</images></dataset>")
    proc = gumshoe("import", tmp_path / "d.gumshoe", src / "d.xml", "--format", "dlib")
    assert proc.returncode == 0 and len(skipped_lines(proc)) == 2, proc.stderr
    assert [s.path for s in _samples(tmp_path / "d.gumshoe")] == ["ok.png"]


# ----------------------------------------------------------------------------- joints.mat


def test_zlib_bomb_joints_mat_is_refused_quickly(tmp_path: Path) -> None:
    root = hostile.lsp_folder(tmp_path / "lsp", hostile.zlib_bomb_mat())
    assert (root / "joints.mat").stat().st_size < 400_000
    t = time.monotonic()
    proc = gumshoe("import", tmp_path / "p.gumshoe", root, "--format", "lsp", timeout=60,
                   memory=2 << 30)
    assert time.monotonic() - t < 30
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("gumshoe: error: "), proc.stderr
    assert "joints.mat" in proc.stderr and "too large" in proc.stderr


@pytest.mark.parametrize("case", ["truncated", "bad_zlib", "huge_tag", "not_mat", "no_joints",
                                  "v73", "empty"])
def test_broken_joints_mat_is_one_format_error(tmp_path: Path, case: str) -> None:
    good = hostile.joints_mat(3)
    data = {
        "truncated": good[: len(good) - 30],
        "bad_zlib": good[:136] + bytes(b ^ 0x5A for b in good[136:200]) + good[200:],
        "huge_tag": good[:128] + bytes([15, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F]) + good[136:],
        "not_mat": b"hello world" * 20,
        "no_joints": hostile.joints_mat(3, compress=False).replace(b"joints", b"jniots"),
        "v73": good[:124] + struct_v73() + good[128:],
        "empty": b"",
    }[case]
    path = tmp_path / "joints.mat"
    path.write_bytes(data)
    with pytest.raises(FormatError) as exc:
        load_joints(path)
    assert "joints.mat" in str(exc.value) and "\n" not in str(exc.value)


def struct_v73() -> bytes:
    import struct

    return struct.pack("<H", 0x0200) + b"IM"


MAT_OPS = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "set32"]),
                             st.integers(0, 10_000), st.integers(0, 2**32 - 1)),
                   min_size=1, max_size=6)


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for op, pos, value in ops:
        if not b:
            break
        i = pos % len(b)
        if op == "flip":
            b[i] ^= 1 << (value % 8)
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b[i:i] = value.to_bytes(4, "little")
        else:
            b[i:i + 4] = value.to_bytes(4, "little")
    return bytes(b)


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(compress=st.booleans(), ops=MAT_OPS)
def test_fuzzed_joints_mat_only_raises_format_error(tmp_path: Path, compress: bool,
                                                    ops: list[tuple[str, int, int]]) -> None:
    path = tmp_path / "joints.mat"
    path.write_bytes(_mutate(hostile.joints_mat(4, compress), ops))
    t = time.monotonic()
    try:
        joints = load_joints(path)
    except FormatError as exc:
        assert "\n" not in str(exc) and "joints.mat" in str(exc)
    else:
        assert joints.ndim == 3 and joints.shape[1:] == (14, 3)
    assert time.monotonic() - t < 5


# ----------------------------------------------------------------------------- crop step

BOX_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([0.0, 1e-300, -1e-300, 1e308, -1e308, 5e-324, 1e15]),
                       st.floats(-1000, 1000))


@settings(max_examples=400, deadline=None)
@given(w=st.integers(1, 3000), h=st.integers(1, 3000),
       box=st.one_of(st.none(), st.tuples(BOX_VALUES, BOX_VALUES, BOX_VALUES, BOX_VALUES)),
       size=st.sampled_from([32, 64, 96]))
def test_crop_step_fuzz_gives_a_crop_or_one_clean_error(w: int, h: int, box, size: int) -> None:
    """The importer's crop step on any image size and box: an (S, S, 3) crop, or an
    ImageError whose one-line message names the problem; nothing else."""
    from core.images import crop_for

    image = np.full((min(h, 64), min(w, 64), 3), 200, np.uint8)
    try:
        crop, lb = crop_for(image, w, h, box, size, "x.png")
    except ImageError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x.png: ")
        return
    assert isinstance(lb, Letterbox) and crop.shape == (size, size, 3) and crop.dtype == np.uint8
    assert all(np.isfinite(v) for v in (lb.scale, lb.dx, lb.dy)) and lb.scale > 0


def test_letterbox_refuses_non_finite_transforms() -> None:
    for box in [(50, 40, 10, 5), (10, 10, 10, 10), (0, 0, 1e-300, 1e-300),
                (-1e308, -1e308, 1e308, 1e308), (float("nan"), 0, 1, 1)]:
        with pytest.raises(ValueError):
            letterbox(np.zeros((10, 10, 3), np.uint8), letterbox_for(10, 10, box, 32))


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("size", ["33", "100000", "0", "-64", "16"])
def test_image_size_is_validated_before_any_work(tmp_path: Path, size: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        hostile.pts_face(src, f"f{i}", i)
    assert gumshoe("import", tmp_path / "p.gumshoe", src, "--format", "pts").returncode == 0
    cache = tmp_path / "p.gumshoe-cache"
    before = sorted(p.name for p in cache.iterdir())
    t = time.monotonic()
    proc = gumshoe("train", tmp_path / "p.gumshoe", "--image-size", size, "--epochs", "1",
                   timeout=120, memory=6 << 30)
    assert proc.returncode == 2 and "--image-size" in proc.stderr and "multiple of 32" in proc.stderr
    assert time.monotonic() - t < 60
    assert sorted(p.name for p in cache.iterdir()) == before
    with Project.open(tmp_path / "p.gumshoe") as p:
        assert p.runs() == []


def test_hostile_csv_cells_are_skipped_one_line_each(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "folder.png").mkdir(parents=True)
    hostile.png(src / "ok.png", 1)
    rows = ["image,x0,y0", "ok.png,3,4", '"a\x00b.png",3,4', f"{'n' * 5000}.png,3,4",
            "folder.png,3,4", '"line\nskipped forged.png: fake",3,4', "=cmd|' /C calc'!A0,3,4"]
    (src / "l.csv").write_text("\n".join(rows) + "\n")
    proc = gumshoe("import", tmp_path / "p.gumshoe", src / "l.csv", "--format", "csv")
    assert proc.returncode == 0 and no_traceback(proc), proc.stderr
    lines = skipped_lines(proc)
    assert len(lines) == 5 and all("image missing" in ln for ln in lines), proc.stderr
    assert not any(ln.startswith("skipped forged") for ln in proc.stderr.splitlines())
    assert "1 added" in proc.stdout


def test_entity_expansion_bomb_xml_is_one_line(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    (tmp_path / "bomb.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY l0 "lol">{lol}]>'
        "<dataset><images><image file='a.jpg'>&l9;</image></images></dataset>")
    proc = gumshoe("import", tmp_path / "p.gumshoe", tmp_path / "bomb.xml", "--format", "dlib",
                   timeout=60, memory=2 << 30)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "bomb.xml: not readable XML" in proc.stderr


def test_joints_mat_that_crashed_scipy_is_one_format_error(tmp_path: Path) -> None:
    """Found by benchmarks/bench_hostile.py: an unknown data type (73) in the tag of
    ``joints``' real part made SciPy's C reader crash the process (SIGSEGV)."""
    data = bytearray(hostile.joints_mat(1, compress=False))
    tag = 128 + 8 + 16 + 24 + 16  # header, matrix tag, flags, 3 dims, name
    assert data[tag] == 9  # miDOUBLE
    data[tag] = 73
    root = hostile.lsp_folder(tmp_path / "lsp", bytes(data), images=1)
    proc = gumshoe("import", tmp_path / "p.gumshoe", root, "--format", "lsp", timeout=60)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)  # -11 was a segfault
    assert proc.stderr.count("\n") == 1 and "joints.mat" in proc.stderr
    assert "MATLAB type 73" in proc.stderr


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=6),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8)
COCO_FIELDS = ["id", "image_id", "category_id", "keypoints", "bbox", "iscrowd"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=st.dictionaries(st.sampled_from(["id", "file_name"]), JSON_VALUES, max_size=2),
       ann=st.dictionaries(st.sampled_from(COCO_FIELDS), JSON_VALUES, max_size=6),
       category=st.dictionaries(st.sampled_from(["id", "keypoints", "skeleton", "name"]),
                                JSON_VALUES, max_size=4))
def test_coco_fields_of_any_json_type_give_items_skips_or_one_format_error(
        tmp_path: Path, image: dict, ann: dict, category: dict) -> None:
    """A COCO file whose image, annotation and category fields hold any JSON value:
    per-annotation problems are Skips, the rest still read; only a file without a
    usable category is one FormatError."""
    hostile.png(tmp_path / "a.png", 0)
    doc = {"images": [image, {"id": 1, "file_name": "a.png"}],
           "annotations": [ann, {"id": 2, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2]}],
           "categories": [category, {"id": 1, "keypoints": ["a"]}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    try:
        out = list(get_reader("coco").read(path, "landmarks"))
    except FormatError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(o, RawItem | Skip) for o in out) and len(out) == 2
    assert all("\n" not in str(o) for o in out if isinstance(o, Skip))


def test_dlib_part_named_with_a_huge_number_does_not_size_the_schema(tmp_path: Path) -> None:
    hostile.png(tmp_path / "a.png", 0)
    part = "<part name='99999999999' x='1' y='2'/>"
    boxes = "".join(f"<box top='1' left='1' width='20' height='20'>{part}</box>" for _ in range(3))
    good = "<box top='1' left='1' width='20' height='20'><part name='00' x='3' y='4'/>" \
           "<part name='01' x='5' y='6'/></box>"
    (tmp_path / "d.xml").write_text(f"<dataset><images><image file='a.png'>{boxes}{good}"
                                    "</image></images></dataset>")
    proc = gumshoe("import", tmp_path / "p.gumshoe", tmp_path / "d.xml", "--format", "dlib",
                   timeout=60, memory=2 << 30)
    assert proc.returncode == 0 and len(skipped_lines(proc)) == 3, proc.stderr
    assert "1 added" in proc.stdout
