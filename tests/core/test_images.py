from __future__ import annotations

import dataclasses
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from core.images import (
    BOX_MARGIN,
    ImageCache,
    ImageError,
    content_hash,
    decode_image,
    letterbox,
    letterbox_for,
    load_image,
)
from core.project import Sample

# ----------------------------------------------------------------------------- helpers


def halves(h: int = 60, w: int = 90) -> np.ndarray:
    """RGB test image: left half red, right half blue, a green top band."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2 :] = (0, 0, 255)
    img[: h // 6] = (0, 255, 0)
    return img


def write(path: Path, rgb: np.ndarray, ext: str = ".png") -> Path:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def close(a: np.ndarray, b: np.ndarray, tol: float = 12) -> bool:
    return float(np.abs(a.astype(int) - b.astype(int)).mean()) < tol


def sample(sid: int, path: Path, w: int, h: int, box=None, chash: str = "") -> Sample:
    return Sample(sid, 1, path.name, path.name, w, h, box, "train",
                  chash or content_hash(path.read_bytes()), "unreviewed", str(path.parent))


# ----------------------------------------------------------------------------- decoding


def test_png_and_jpeg_decode_to_rgb(tmp_path: Path) -> None:
    rgb = halves()
    img, h = load_image(write(tmp_path / "a.png", rgb))
    assert img.dtype == np.uint8 and img.shape == (60, 90, 3)
    assert np.array_equal(img, rgb)
    assert h == content_hash((tmp_path / "a.png").read_bytes())
    jpg, _ = load_image(write(tmp_path / "a.jpg", rgb, ".jpg"))
    assert close(jpg, rgb)


def test_extension_lies_png_named_jpg(tmp_path: Path) -> None:
    img, _ = load_image(write(tmp_path / "really-a-png.jpg", halves()))
    assert np.array_equal(img, halves())


def test_greyscale_becomes_three_channels(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (20, 1))
    for ext in (".png", ".jpg"):
        p = tmp_path / f"g{ext}"
        ok, buf = cv2.imencode(ext, grey)
        p.write_bytes(buf.tobytes())
        img, _ = load_image(p)
        assert img.shape == (20, 50, 3)
        assert np.array_equal(img[..., 0], img[..., 2])
        assert close(img[..., 1], grey, 3)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200  # R
    rgba[..., 3] = 128
    p = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(p)
    img, _ = load_image(p)
    assert img.shape == (10, 12, 3)
    assert (img[..., 0] == 200).all() and (img[..., 1:] == 0).all()


def test_exif_orientation_applied(tmp_path: Path) -> None:
    rgb = halves(40, 80)  # wide: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer must rotate 90 degrees clockwise
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    p = tmp_path / "rot.jpg"
    p.write_bytes(buf.getvalue())
    img, _ = load_image(p)
    assert img.shape == (80, 40, 3)  # now tall
    # rotated clockwise: the old left (red) is now on top, the old top band (green) on the right
    assert img[2, 20, 0] > 200 and img[2, 20, 2] < 60
    assert img[-3, 20, 2] > 200
    assert img[60, -2, 1] > 200
    # reduced JPEG decoding keeps the orientation
    small, f = decode_image(p.read_bytes(), p, reduce=2)
    assert f == 2
    assert small.shape == (40, 20, 3)
    assert close(small, cv2.resize(img, (20, 40), interpolation=cv2.INTER_AREA), 15)


def test_zero_byte_text_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: empty file"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "notes.jpg").write_text("this is not an image\n" * 20)
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(ImageError, match=r"nope\.png: no such file"):
        load_image(tmp_path / "nope.png")


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    data = write(tmp_path / "full.jpg", noisy, ".jpg").read_bytes()
    cut = data[: len(data) * 2 // 3]
    (tmp_path / "cut.jpg").write_bytes(cut)
    with pytest.raises(ImageError, match=r"cut\.jpg: truncated JPEG"):
        load_image(tmp_path / "cut.jpg")
    (tmp_path / "head.jpg").write_bytes(data[:300])
    with pytest.raises(ImageError, match=r"head\.jpg: truncated"):
        load_image(tmp_path / "head.jpg")
    # stray bytes between segments (libjpeg skips them) and after the end are harmless
    after_app0 = 4 + struct.unpack(">H", data[4:6])[0]
    (tmp_path / "stray.jpg").write_bytes(data[:after_app0] + b"\0\0\0" + data[after_app0:])
    assert load_image(tmp_path / "stray.jpg")[0].shape == (120, 160, 3)
    (tmp_path / "tail.jpg").write_bytes(data + b"\0" * 100)
    assert load_image(tmp_path / "tail.jpg")[0].shape == (120, 160, 3)


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = write(tmp_path / "full.png", rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: truncated PNG"):
        load_image(tmp_path / "cut.png")


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def test_decompression_bomb_header_refused_before_decoding(tmp_path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(ImageError, match=r"bomb\.png: image claims size 100000x100000"):
        load_image(tmp_path / "bomb.png")
    # a JPEG frame header claiming 40000 x 40000 is refused the same way
    jpg = bytearray(write(tmp_path / "x.jpg", halves(), ".jpg").read_bytes())
    i = next(i for i in range(2, len(jpg)) if jpg[i] == 0xFF and jpg[i + 1] in (0xC0, 0xC2))
    jpg[i + 5 : i + 9] = struct.pack(">HH", 40_000, 40_000)
    (tmp_path / "bomb.jpg").write_bytes(bytes(jpg))
    with pytest.raises(ImageError, match=r"bomb\.jpg: image claims size 40000x40000"):
        load_image(tmp_path / "bomb.jpg")


def test_other_formats_are_size_checked_by_opencv(tmp_path: Path) -> None:
    # PNM headers are not parsed here: OpenCV's own check, set up by importing
    # core.images before cv2, refuses 20000 x 15000 (300 Mpixel) before allocating
    (tmp_path / "big.ppm").write_bytes(b"P6\n20000 15000\n255\n" + b"\0" * 300)
    code = ("import sys; from core.images import load_image, ImageError\n"
            "try: load_image(sys.argv[1])\n"
            "except ImageError as e: print(e)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.ppm")],
                         capture_output=True, text=True, cwd=Path(__file__).parents[2], check=True)
    assert "big.ppm: image dimensions over the limit" in out.stdout


def test_fgnet_greyscale_images(dataset) -> None:
    images = sorted((dataset("fgnet") / "images").glob("*.JPG"))
    greys = 0
    for p in images[:60]:
        img, h = load_image(p)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
        assert h == content_hash(p.read_bytes())
        if np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]):
            greys += 1
            assert close(img[..., 0], cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8),
                                                   cv2.IMREAD_GRAYSCALE), 1)
    assert greys > 0, "expected some greyscale images among the first 60 FG-NET files"


# ----------------------------------------------------------------------------- letterbox


@pytest.mark.parametrize(("w", "h", "box"), [
    (90, 60, None), (60, 90, None), (640, 480, (100, 80, 300, 330)), (50, 50, (-5, -5, 20, 40)),
])
def test_letterbox_round_trip_and_nan(w: int, h: int, box) -> None:
    lb = letterbox_for(w, h, box, 64)
    pts = np.array([[0.0, 0.0], [w - 1, h - 1], [np.nan, 3.0], [17.25, 9.5]])
    back = lb.to_image(lb.to_cache(pts))
    np.testing.assert_allclose(back, pts, atol=1e-9)
    assert np.isnan(lb.to_cache(pts)[2, 0])


def test_letterbox_whole_image_is_centred_and_padded() -> None:
    lb = letterbox_for(90, 60, None, 64)
    # the image's outer edges (pixel-centre -0.5 .. w-0.5) span the square's width exactly
    np.testing.assert_allclose(lb.to_cache(np.array([[-0.5, 29.5], [89.5, 29.5]])),
                               [[-0.5, 31.5], [63.5, 31.5]])
    img = letterbox(halves(), lb)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    pad = round((64 - 60 * 64 / 90) / 2)
    assert (img[: pad - 1] == 0).all() and (img[-pad + 1 :] == 0).all()  # top/bottom bars
    assert img[40, 5, 0] > 200 and img[40, 58, 2] > 200  # not stretched: red left, blue right


def test_letterbox_box_has_margin_and_follows_points() -> None:
    # a white square at a known place, boxed tightly: it must land in the centre with margin
    img = np.zeros((400, 600, 3), np.uint8)
    img[100:200, 300:400] = 255
    lb = letterbox_for(600, 400, (300, 100, 400, 200), 96)
    assert lb.scale == pytest.approx(96 / (100 * (1 + 2 * BOX_MARGIN)))
    crop = letterbox(img, lb)
    corners = lb.to_cache(np.array([[300, 100], [399, 199]]))
    (x0, y0), (x1, y1) = np.round(corners).astype(int)
    assert 14 <= x0 <= 18 and 78 <= x1 <= 81
    assert crop[y0 + 2 : y1 - 1, x0 + 2 : x1 - 1].min() > 240
    assert crop[: y0 - 2].max() < 10 and crop[:, x1 + 2 :].max() < 10


def test_big_downscale_averages_instead_of_aliasing() -> None:
    # a 1-pixel checkerboard shrunk 16x must come out mid-grey, not black or white
    board = ((np.indices((1024, 1024)).sum(0) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[..., None], 3, axis=2)
    out = letterbox(img, letterbox_for(1024, 1024, None, 64))
    assert abs(float(out.mean()) - 127.5) < 3 and out.std() < 3


def test_reduced_decode_matches_full_decode(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:800, 0:1200]
    rgb = np.stack([xx * 255 // 1200, yy * 255 // 800, (xx + yy) % 256], -1).astype(np.uint8)
    p = write(tmp_path / "big.jpg", rgb, ".jpg")
    lb = letterbox_for(1200, 800, (400, 200, 700, 500), 64)
    f = lb.reduction()
    assert f == 4
    full = letterbox(load_image(p)[0], lb)
    reduced = letterbox(decode_image(p.read_bytes(), p, f)[0], lb, reduce=f)
    assert decode_image(write(tmp_path / "big.png", rgb).read_bytes(), p, f)[1] == 1
    assert close(full, reduced, 3)


# ----------------------------------------------------------------------------- cache


def make_files(folder: Path, n: int) -> list[Sample]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        rgb = np.full((50 + i, 70, 3), (20 * i % 256, 100, 200 - 10 * i), np.uint8)
        p = write(folder / f"im{i}.png", rgb)
        out.append(sample(i + 1, p, 70, 50 + i))
    return out


def test_cache_ensure_batch_and_reopen(tmp_path: Path) -> None:
    samples = make_files(tmp_path / "src", 5)
    cache = ImageCache(tmp_path / "cache", 32)
    calls: list[tuple[int, int]] = []
    assert cache.ensure(samples, progress=lambda d, t: calls.append((d, t))) == {}
    assert calls[-1] == (5, 5)
    b = cache.batch([3, 1])
    assert b.shape == (2, 32, 32, 3)
    expect = letterbox(load_image(samples[2].image_path)[0], cache.transform(samples[2]))
    assert np.array_equal(b[0], expect)
    assert (tmp_path / "cache" / "images-32.u8").exists()
    assert (tmp_path / "cache" / "images-32.json").exists()

    again = ImageCache(tmp_path / "cache", 32)
    assert len(again) == 5 and np.array_equal(again.batch([3, 1]), b)
    # fresh entries are judged by size and mtime alone: a same-size rewrite with the
    # old mtime restored goes unnoticed, which proves ensure() did not read the file
    p = samples[0].image_path
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[-20] ^= 0xFF
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert again.ensure(samples) == {}
    assert again.content_hash(1) == samples[0].content_hash != content_hash(bytes(data))
    with pytest.raises(KeyError, match="sample 99 is not cached"):
        again.batch([99])


def test_cache_rebuilds_changed_source(tmp_path: Path) -> None:
    samples = make_files(tmp_path / "src", 3)
    cache = ImageCache(tmp_path / "cache", 16)
    cache.ensure(samples)
    before = cache.batch([2])[0].copy()
    # touch without changing content: kept (same hash), no new slot
    p = samples[1].image_path
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    cache.ensure(samples)
    assert np.array_equal(cache.batch([2])[0], before)
    # new content: not the image the labels were made on, so reported and dropped ...
    write(p, np.full((51, 70, 3), 255, np.uint8))
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 2 * 10**9))
    errors = cache.ensure(samples)
    assert list(errors) == [2] and "changed since import" in errors[2] and 2 not in cache
    # ... and re-decoded once the sample holds the new content hash (re-imported)
    samples[1] = dataclasses.replace(samples[1], content_hash=content_hash(p.read_bytes()))
    assert cache.ensure(samples) == {}
    assert cache.batch([2])[0].max() == 255 and not np.array_equal(cache.batch([2])[0], before)
    assert cache.content_hash(2) == content_hash(p.read_bytes())
    assert np.array_equal(ImageCache(tmp_path / "cache", 16).batch([2]), cache.batch([2]))
    # a source that became unreadable is reported and dropped, the rest kept
    samples[2].image_path.write_bytes(b"")
    errors = ImageCache(tmp_path / "cache", 16).ensure(samples)
    assert list(errors) == [3] and "empty file" in errors[3]
    assert 3 not in ImageCache(tmp_path / "cache", 16)


def test_cache_put_then_ensure_decodes_nothing(tmp_path: Path) -> None:
    samples = make_files(tmp_path / "src", 4)
    cache = ImageCache(tmp_path / "cache", 24)
    for s in samples:
        img, h = load_image(s.image_path)
        lb = cache.transform(s)
        cache.put(s.id, h, letterbox(img, lb), lb, path=s.image_path)
    with pytest.raises(ValueError, match="expected \\(24, 24, 3\\) uint8"):
        cache.put(9, "x", img, lb)
    cache.flush()
    slots_before = cache._used
    progress: list[tuple[int, int]] = []
    assert cache.ensure(samples, progress=lambda d, t: progress.append((d, t))) == {}
    assert progress == [(4, 4)] and cache._used == slots_before
    # a new box makes the entry stale
    boxed = dataclasses.replace(samples[0], box=(0, 0, 20, 20))
    cache.ensure([boxed])
    assert cache._used == slots_before + 1


def test_cache_survives_corrupt_or_missing_index(tmp_path: Path) -> None:
    samples = make_files(tmp_path / "src", 3)
    ImageCache(tmp_path / "cache", 16).ensure(samples)
    index = tmp_path / "cache" / "images-16.json"
    reader = ImageCache(tmp_path / "cache", 16).reader([1, 2, 3])  # a trainer's view
    rows = reader[[0, 1, 2]]
    index.write_text('{"format": 1, "size": 16, "sl')  # torn write
    cache = ImageCache(tmp_path / "cache", 16)
    assert len(cache) == 0
    assert cache.ensure(samples[::-1]) == {} and len(cache) == 3
    # rebuilt into a new file: the old view still reads its own rows
    assert np.array_equal(reader[[0, 1, 2]], rows)
    assert np.array_equal(cache.batch([1, 2, 3]), rows)
    (tmp_path / "cache" / "images-16.u8").unlink()
    cache = ImageCache(tmp_path / "cache", 16)  # index points past a missing data file
    assert len(cache) == 0
    cache.ensure(samples)
    assert cache.batch([1, 2, 3]).shape == (3, 16, 16, 3)


def test_cache_grows_and_stop_keeps_finished_work(tmp_path: Path) -> None:
    samples = make_files(tmp_path / "src", 12)
    cache = ImageCache(tmp_path / "cache", 8)
    seen: list[int] = []
    cache.ensure(samples, progress=lambda d, t: seen.append(d), should_stop=lambda: len(cache) >= 5)
    assert 5 <= len(cache) < 12
    reopened = ImageCache(tmp_path / "cache", 8)
    assert len(reopened) == len(cache)  # what finished was flushed
    reopened.ensure(samples, workers=1)
    assert len(reopened) == 12
    for s in samples:
        expect = letterbox(load_image(s.image_path)[0], reopened.transform(s))
        assert np.array_equal(reopened.batch([s.id])[0], expect)


def test_cache_reader_reads_rows_from_the_map_in_the_asked_order(tmp_path: Path) -> None:
    samples = make_files(tmp_path / "src", 6)
    cache = ImageCache(tmp_path / "cache", 16)
    cache.ensure(samples[:4])
    ids = [4, 2, 1, 3]
    rows = cache.reader(ids)
    assert len(rows) == 4 and rows.shape == (4, 16, 16, 3) and rows.nbytes == 4 * 16 * 16 * 3
    assert isinstance(rows._mm, np.memmap) and rows._mm.mode == "r"  # nothing copied up front
    for pos in ([0, 1, 2, 3], [3, 0, 3, 1], np.array([2])):
        assert np.array_equal(rows[pos], cache.batch([ids[p] for p in pos]))
    assert rows[np.array([], dtype=np.int64)].shape == (0, 16, 16, 3)
    # an import growing the data file afterwards leaves the reader's rows intact
    before = rows[[0, 1, 2, 3]]
    cache.ensure(samples)
    assert np.array_equal(rows[[0, 1, 2, 3]], before)
    with pytest.raises(KeyError, match="sample 99 is not cached"):
        cache.reader([1, 99])


def test_cache_on_utkface_is_fast(dataset, tmp_path: Path) -> None:
    import time

    files = sorted(dataset("utkface-part1").glob("*.jpg"))[:400]
    samples = [sample(i + 1, p, 200, 200) for i, p in enumerate(files)]
    cache = ImageCache(tmp_path / "cache", 64)
    t = time.perf_counter()
    assert cache.ensure(samples) == {}
    rate = len(samples) / (time.perf_counter() - t)
    assert rate > 300, f"{rate:.0f} images/s"
    assert cache.batch([1]).mean() > 20

