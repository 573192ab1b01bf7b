"""Builders of hostile dataset files, each made in a folder the test gives (nothing
hostile is stored in the repository): bad boxes, file names that are not UTF-8 or
hold a newline, a FIFO or a link to /dev/zero posing as a label file, an image
larger than memory, a decompression bomb, paths leading out of the dataset, a zlib
bomb and fuzzed variants of ``joints.mat``; plus helpers to run ``gumshoe`` in a
subprocess under a memory limit (so a regression cannot take the machine down)."""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
GOOD = 68  # points per .pts face below
MEMORY_LIMIT = 3 << 30  # address space of a gumshoe subprocess


def limited(memory: int = MEMORY_LIMIT):
    """preexec_fn: cap the child's address space (and core dumps)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def gumshoe(*args: object, timeout: float = 120, memory: int = MEMORY_LIMIT,
            cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m core ARGS`` with a memory cap and a timeout (raises TimeoutExpired)."""
    return subprocess.run([sys.executable, "-m", "core", *map(os.fsdecode, map(_fs, args))],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limited(memory), errors="backslashreplace")


def _fs(a: object) -> str | bytes:
    return a if isinstance(a, bytes) else str(a)


def skipped_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("skipped ")]


def no_traceback(proc: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in proc.stderr and "Error:" not in proc.stderr.replace(
        "gumshoe: error:", "")


# ----------------------------------------------------------------------------- images


def png(path: Path | bytes, seed: int = 0, h: int = 60, w: int = 80) -> None:
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    _write(path, buf.tobytes())


def _write(path: Path | bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def pts_text(seed: int = 0, n: int = GOOD) -> str:
    pts = np.random.default_rng(seed).uniform(5, 55, (n, 2))
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    return f"version: 1\nn_points: {n}\n{{\n{body}\n}}\n"


def pts_face(folder: Path, stem: str, seed: int = 0) -> None:
    png(folder / f"{stem}.png", seed)
    (folder / f"{stem}.pts").write_text(pts_text(seed))


def png_bomb(path: Path, side: int = 100_000) -> None:
    """A valid-looking PNG whose header claims side x side pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b""))


def sparse_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk space (starts like a JPEG)."""
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(size)


# ----------------------------------------------------------------------------- pts folders


def hostile_pts_folder(root: Path, good: int = 4) -> dict[str, str]:
    """A .pts folder with ``good`` clean faces and one of each hostile item. Returns
    {name as it should appear (escaped) in a skipped line: what it is}."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        pts_face(root, f"face{i}", i)
    bad: dict[str, str] = {}
    # a file name that is not UTF-8 (latin-1 e-acute)
    name = os.fsencode(root) + b"/caf\xe9"
    png(name + b".png", 7)
    _write(name + b".pts", pts_text(7).encode())
    bad['"caf\\xe9.png"'] = "non-UTF-8 name"
    # a FIFO posing as a label file (reading it would block forever)
    os.mkfifo(root / "fifo.pts")
    png(root / "fifo.png", 8)
    bad["fifo.pts"] = "FIFO"
    # a symlink to /dev/zero (reading it would never end)
    (root / "zero.pts").symlink_to("/dev/zero")
    png(root / "zero.png", 9)
    bad["zero.pts"] = "link to /dev/zero"
    # an image larger than the memory limit of the test process (sparse: no disk used)
    sparse_file(root / "huge.jpg", MEMORY_LIMIT + (1 << 30))
    (root / "huge.pts").write_text(pts_text(10))
    bad["huge.jpg"] = "image larger than memory"
    # a decompression bomb
    png_bomb(root / "bomb.png")
    (root / "bomb.pts").write_text(pts_text(11))
    bad["bomb.png"] = "decompression bomb"
    # a file name with a newline that tries to forge a report line
    evil = "evil\nskipped forged.jpg: fake"
    png(root / f"{evil}.png", 12)
    (root / f"{evil}.pts").write_text(pts_text(12))
    bad['"evil\\nskipped forged.jpg: fake.png"'] = "newline in the name"  # imported, not skipped
    # a label file that is a symlink out of the dataset
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.pts").write_text(pts_text(13))
    (root / "secret.pts").symlink_to(outside / "secret.pts")
    png(root / "secret.png", 13)
    bad["secret.pts"] = "symlink outside"
    return bad


# ----------------------------------------------------------------------------- boxes

BAD_BOXES = {  # x0, y0, x1, y1 as CSV cells
    "inverted": ("50", "40", "10", "5"),
    "zero": ("10", "10", "10", "10"),
    "tiny": ("10", "10", "10.000000000000001", "1e-300"),
    "denormal": ("0", "0", "1e-300", "1e-300"),
    "huge": ("-1e308", "-1e308", "1e308", "1e308"),
    "overflow": ("1e308", "0", "-1e308", "10"),
    "outside": ("5000", "5000", "5100", "5100"),
}


def csv_with_bad_boxes(root: Path, good: int = 3) -> Path:
    """labels.csv with ``good`` boxed rows and one row per BAD_BOXES entry."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["image,box_x0,box_y0,box_x1,box_y1,x0,y0,x1,y1"]
    for i in range(good):
        png(root / f"ok{i}.png", i)
        rows.append(f"ok{i}.png,5,5,50,40,10,10,30,30")
    for i, (name, box) in enumerate(BAD_BOXES.items()):
        png(root / f"{name}.png", 100 + i)
        rows.append(f"{name}.png,{','.join(box)},10,10,30,30")
    path = root / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def coco_with_bad_boxes(root: Path, good: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    boxes = [("ok", [5, 5, 45, 35])] * good + [
        (name, [float(b[0]), float(b[1]), float(b[2]) - float(b[0]), float(b[3]) - float(b[1])])
        for name, b in BAD_BOXES.items()]
    for i, (name, bbox) in enumerate(boxes):
        png(root / f"{name}{i}.png", i)
        images.append({"id": i + 1, "file_name": f"{name}{i}.png", "width": 80, "height": 60})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "bbox": bbox, "keypoints": [10, 10, 2, 30, 30, 2]})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b"], "skeleton": []}]}
    path = root / "ann.json"
    # json cannot write inf: 1e308 - (-1e308) overflows to inf in the w/h above
    path.write_text(json.dumps(doc).replace("Infinity", "1e309"))
    return path


# ----------------------------------------------------------------------------- MATLAB files


def joints_mat(n: int = 3, compress: bool = True) -> bytes:
    from scipy.io import savemat

    joints = np.zeros((14, 3, n))
    joints[:, 0, :] = np.arange(14)[:, None] + 10
    joints[:, 1, :] = 20.0
    joints[:, 2, :] = 1
    buf = io.BytesIO()
    savemat(buf, {"joints": joints}, do_compression=compress)
    return buf.getvalue()


def _mat_header() -> bytes:
    text = b"MATLAB 5.0 MAT-file, hostile test".ljust(116, b" ")
    return text + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"


def _element(kind: int, payload: bytes) -> bytes:
    pad = (-len(payload)) % 8
    return struct.pack("<II", kind, len(payload)) + payload + b"\0" * pad


def zlib_bomb_mat(n: int = 900_000) -> bytes:
    """A MAT v5 file whose one compressed variable ``joints`` (14 x 3 x n doubles, all
    zero) inflates ~1000-fold: n = 900 000 is 302 MB from about 300 KB."""
    flags = _element(6, struct.pack("<II", 6, 0))  # mxDOUBLE_CLASS
    dims = _element(5, struct.pack("<iii", 14, 3, n))
    name = _element(1, b"joints")
    head = flags + dims + name
    data_tag = struct.pack("<II", 9, 14 * 3 * n * 8)  # miDOUBLE
    body_len = len(head) + len(data_tag) + 14 * 3 * n * 8
    z = zlib.compressobj(9)
    out = [z.compress(struct.pack("<II", 14, body_len) + head + data_tag)]
    zeros = b"\0" * (1 << 20)
    left = 14 * 3 * n * 8
    while left:
        step = min(left, len(zeros))
        out.append(z.compress(zeros[:step]))
        left -= step
    out.append(z.flush())
    compressed = b"".join(out)
    return _mat_header() + struct.pack("<II", 15, len(compressed)) + compressed


def lsp_folder(root: Path, mat: bytes, images: int = 3) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        png(root / "images" / f"im{i + 1:05d}.jpg", i)
    (root / "joints.mat").write_bytes(mat)
    return root
