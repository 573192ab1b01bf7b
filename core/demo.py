"""The demo project: procedurally drawn faces whose 68 iBUG landmarks come from the
same parameters as the drawing, with a known share of labels corrupted.

Each face is a small 3D model (feature curves on an ellipsoid head, in face units:
head half-width 1, x right, y down, z towards the viewer) turned by yaw and pitch,
projected orthographically, rolled, scaled and shifted; the drawing's outlines are
the very curves the landmarks are sampled from (jaw on the head outline, brows,
eye lids, nose, lips), so the points sit on the drawn features. Expression (mouth
open, smile, raised brows), skin, hair, eye colour, lighting and background vary.

The images (JPEG, 256 x 256) and their clean landmarks (iBUG ``.pts`` files) go to a
folder beside the project, ``<stem>-images/``, registered as a ``pts`` source; the
project's labels are then contaminated with :func:`core.noise.apply_noise`, so the
truth is in the contamination table.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.formats.pts import format_pts
from core.images import ImageCache, content_hash, decode_image, letterbox, letterbox_for
from core.importer import split_for
from core.noise import apply_noise
from core.project import NewSample, Project
from core.schemas import IBUG68

SIZE = 256
CACHE_SIZE = 64
DEFAULT_NOISE = "g-ugo:0.05,swap:0.05,l-ugo:0.005"

SKIN = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 96),
                 (160, 102, 66), (110, 70, 45)], np.float64)
HAIR = np.array([(30, 24, 20), (70, 45, 25), (120, 80, 40), (190, 150, 90), (140, 50, 25),
                 (150, 150, 150)], np.float64)
IRIS = np.array([(70, 45, 25), (40, 90, 140), (60, 110, 70), (110, 85, 50)], np.float64)


@dataclass(frozen=True)
class Face:
    cx: float  # head centre in the image (px)
    cy: float
    scale: float  # px per face unit
    yaw: float
    pitch: float
    roll: float
    mouth_open: float
    smile: float
    brow_raise: float
    eye_open: float
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    hair_style: int  # 0 bald, 1 short, 2 long
    hairline: float


def random_face(rng: np.random.Generator, size: int = SIZE) -> Face:
    return Face(
        cx=size / 2 + rng.uniform(-0.06, 0.06) * size,
        cy=size * 0.47 + rng.uniform(-0.05, 0.05) * size,
        scale=size * rng.uniform(0.2, 0.26),
        yaw=rng.uniform(-0.45, 0.45),
        pitch=rng.uniform(-0.15, 0.15),
        roll=rng.uniform(-0.25, 0.25),
        mouth_open=max(0.0, rng.uniform(-0.1, 0.22)),
        smile=rng.uniform(-0.4, 1.0),
        brow_raise=rng.uniform(0.0, 1.0),
        eye_open=rng.uniform(0.75, 1.2),
        skin=tuple(SKIN[rng.integers(len(SKIN))] * rng.uniform(0.92, 1.05)),
        hair=tuple(HAIR[rng.integers(len(HAIR))]),
        iris=tuple(IRIS[rng.integers(len(IRIS))]),
        hair_style=int(rng.choice(3, p=[0.1, 0.5, 0.4])),
        hairline=rng.uniform(-1.0, -0.75),
    )


# --------------------------------------------------------------------------- the model

HEAD_B = 1.45  # ellipsoid half-height (half-width and depth are 1)


def _depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(1.0 - x**2 - (y / HEAD_B) ** 2, 0.0, None))


def _arc(t: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * t)


def _jaw(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower head outline, phi from -pi/2 (image left, ear level) through 0 (chin)."""
    c = np.cos(phi)
    return 0.97 * np.sign(np.sin(phi)) * np.abs(np.sin(phi)) ** 0.8, -0.12 + 1.5 * c


def _cranium(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The upper head outline, phi from -pi/2 (image left, ear level) over the top."""
    return np.sin(phi), -0.12 - 1.33 * np.cos(phi)


def _grown(curve: tuple[np.ndarray, np.ndarray, np.ndarray],
           k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A head outline grown by ``k`` about the head centre."""
    x, y, z = curve
    return x * k, (y + 0.12) * k - 0.12, z


def _curves(f: Face) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Dense 2D+depth curves of every feature, in face units: name -> (x, y, z)."""
    t = np.linspace(0.0, 1.0, 25)
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def put(name: str, x: np.ndarray, y: np.ndarray, z_extra: float | np.ndarray = 0.0) -> None:
        out[name] = (x, y, _depth(x, y) + z_extra)

    phi = np.linspace(-np.pi / 2, np.pi / 2, 97)
    put("jaw", *_jaw(phi))
    put("cranium", *_cranium(phi))
    for side, sgn in (("r", -1.0), ("l", 1.0)):  # r = subject's right = image left
        # brows, from image-left to image-right
        bx = sgn * (0.14 + 0.54 * (t if sgn > 0 else 1 - t))
        arch = 0.07 * _arc((bx * sgn - 0.14) / 0.54) ** 0.7
        put(f"brow_{side}", bx, -0.37 - 0.08 * f.brow_raise - arch + 0.02 * (bx * sgn))
        # eye lids, from image-left corner to image-right corner
        ex = sgn * 0.40 + (t - 0.5) * 0.38
        tilt = -0.02 * sgn * (ex - sgn * 0.40) / 0.19
        put(f"upper_{side}", ex, -0.05 + tilt - 0.085 * f.eye_open * _arc(t) ** 0.8)
        put(f"lower_{side}", ex, -0.05 + tilt + 0.05 * f.eye_open * _arc(t))
    ny = np.linspace(-0.1, 0.42, 25)
    put("bridge", np.zeros_like(ny), ny, 0.12 + 0.25 * (ny + 0.1) / 0.52)
    nx = np.linspace(-0.17, 0.17, 25)
    put("nose_base", nx, 0.5 + 0.04 * np.cos(np.pi * nx / 0.34) - 0.02 * (np.abs(nx) > 0.1),
        0.2 * np.cos(np.pi * nx / 0.34) ** 2)
    # mouth: everything hangs off a base line whose corners rise with a smile
    mw = 0.32 + 0.04 * max(f.smile, 0.0)
    mx = np.linspace(-mw, mw, 25)

    def base(x: np.ndarray) -> np.ndarray:
        return 0.84 - 0.08 * f.smile * (x / mw) ** 2 + 0.02 * f.smile

    u = mx / mw
    cupid = 0.02 * np.exp(-((u / 0.18) ** 2))
    put("lip_top", mx, base(mx) - 0.085 * np.sqrt(np.clip(1 - u**2, 0, None)) + cupid, 0.05)
    put("lip_bottom", mx, base(mx) + f.mouth_open + 0.1 * np.sqrt(np.clip(1 - u**2, 0, None)), 0.05)
    ix = mx * 0.85
    iu = ix / mw
    put("inner_top", ix, base(ix) - 0.005 * np.sqrt(np.clip(1 - (iu / 0.85) ** 2, 0, None)), 0.05)
    put("inner_bottom", ix, base(ix) + f.mouth_open * np.sqrt(np.clip(1 - (iu / 0.85) ** 2, 0, None)),
        0.05)
    return out


def _sample(curve: tuple[np.ndarray, np.ndarray, np.ndarray],
            at: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points at fractions ``at`` of the curve's index range (by interpolation)."""
    x, y, z = curve
    i = np.asarray(at) * (len(x) - 1)
    grid = np.arange(len(x))
    return np.interp(i, grid, x), np.interp(i, grid, y), np.interp(i, grid, z)


def _landmark_model(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """The 68 iBUG points as (68, 3) face-unit coordinates, 300-W order."""
    parts = [
        _sample(curves["jaw"], list(np.linspace(0.04, 0.96, 17))),  # 0-16
        _sample(curves["brow_r"], [0, 0.25, 0.5, 0.75, 1]),  # 17-21
        _sample(curves["brow_l"], [0, 0.25, 0.5, 0.75, 1]),  # 22-26
        _sample(curves["bridge"], [0, 1 / 3, 2 / 3, 1]),  # 27-30
        _sample(curves["nose_base"], [0, 0.25, 0.5, 0.75, 1]),  # 31-35
        _sample(curves["upper_r"], [0, 1 / 3, 2 / 3, 1]),  # 36-39
        _sample(curves["lower_r"], [2 / 3, 1 / 3]),  # 40-41
        _sample(curves["upper_l"], [0, 1 / 3, 2 / 3, 1]),  # 42-45
        _sample(curves["lower_l"], [2 / 3, 1 / 3]),  # 46-47
        _sample(curves["lip_top"], [0, 1 / 6, 1 / 3, 0.5, 2 / 3, 5 / 6, 1]),  # 48-54
        _sample(curves["lip_bottom"], [5 / 6, 2 / 3, 0.5, 1 / 3, 1 / 6]),  # 55-59
        _sample(curves["inner_top"], [0, 0.25, 0.5, 0.75, 1]),  # 60-64
        _sample(curves["inner_bottom"], [0.75, 0.5, 0.25]),  # 65-67
    ]
    return np.concatenate([np.stack(p, axis=1) for p in parts])


def _project(f: Face, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Face units -> image pixels (N, 2): yaw, pitch, orthographic view, roll, scale, shift."""
    cy_, sy_ = math.cos(f.yaw), math.sin(f.yaw)
    x1 = x * cy_ + z * sy_
    z1 = -x * sy_ + z * cy_
    cp, sp = math.cos(f.pitch), math.sin(f.pitch)
    y1 = y * cp - z1 * sp
    cr, sr = math.cos(f.roll), math.sin(f.roll)
    return np.stack([f.cx + f.scale * (x1 * cr - y1 * sr),
                     f.cy + f.scale * (x1 * sr + y1 * cr)], axis=1)


def landmarks(f: Face) -> np.ndarray:
    """(68, 2) image-pixel iBUG landmarks of face ``f``."""
    m = _landmark_model(_curves(f))
    return _project(f, m[:, 0], m[:, 1], m[:, 2])


# --------------------------------------------------------------------------- drawing

_SHIFT = 4  # sub-pixel drawing precision: coordinates in 1/16 px


def _fix(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def _poly(img: np.ndarray, pts: np.ndarray, colour: tuple[float, ...]) -> None:
    cv2.fillPoly(img, [_fix(pts)], colour, cv2.LINE_AA, _SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, colour: tuple[float, ...], width: int,
          closed: bool = False) -> None:
    cv2.polylines(img, [_fix(pts)], closed, colour, max(1, width), cv2.LINE_AA, _SHIFT)


def _disc(img: np.ndarray, centre: np.ndarray, r: float, colour: tuple[float, ...]) -> None:
    c = np.round(np.asarray(centre) * (1 << _SHIFT)).astype(int)
    cv2.circle(img, (int(c[0]), int(c[1])), max(1, round(r * (1 << _SHIFT))), colour,
               -1, cv2.LINE_AA, _SHIFT)


def _shade(c: tuple[float, ...], k: float) -> tuple[float, ...]:
    return tuple(float(min(255.0, v * k)) for v in c)


@functools.cache
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel, as fractions of the side (float32, read-only)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    xx.flags.writeable = yy.flags.writeable = False
    return xx, yy


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(40, 220, 3).astype(np.float32)
    xx, yy = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    ramp = np.float32(np.cos(a)) * xx + np.float32(np.sin(a)) * yy
    img = np.clip(base + ramp[..., None] * rng.uniform(-60, 60, 3).astype(np.float32), 0, 255
                  ).astype(np.uint8)
    for _ in range(int(rng.integers(4, 12))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        x, y = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.05, 0.35) * size
        if rng.random() < 0.5:
            cv2.circle(img, (int(x), int(y)), int(r), colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (int(x), int(y)), (int(x + r), int(y + r * rng.uniform(0.3, 3))),
                          colour, -1)
    if rng.random() < 0.5:  # stripes: a texture for the eye to ignore
        for y in range(0, size, int(rng.integers(6, 20))):
            cv2.line(img, (0, y), (size, y + int(rng.integers(-40, 40))),
                     tuple(float(v) for v in rng.uniform(0, 255, 3)), 1, cv2.LINE_AA)
    k = int(rng.choice([1, 3, 7, 11]))
    return cv2.GaussianBlur(img, (k, k), 0) if k > 1 else img


def draw_face(f: Face, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """RGB uint8 (size, size, 3) picture of face ``f``."""
    img = _background(rng, size)
    cv = _curves(f)

    def pts(name: str) -> np.ndarray:
        return _project(f, *cv[name])

    skin, hair = f.skin, f.hair
    # shoulders and neck, behind the head
    shirt = tuple(float(v) for v in rng.uniform(20, 230, 3))
    sh = _project(f, np.array([-2.2, -0.9, 0.9, 2.2]), np.array([3.2, 1.9, 1.9, 3.2]),
                  np.zeros(4))
    _poly(img, np.vstack([sh, [[sh[-1, 0], size * 2], [sh[0, 0], size * 2]]]), shirt)
    neck = _project(f, np.array([-0.5, 0.5, 0.55, -0.55]), np.array([0.8, 0.8, 2.1, 2.1]),
                    np.zeros(4))
    _poly(img, neck, _shade(skin, 0.8))
    head = np.vstack([pts("cranium")[::-1], pts("jaw")])
    if f.hair_style == 2:  # long hair falls behind the head to the shoulders
        x, y, _ = _grown(cv["cranium"], 1.12)
        x = np.concatenate([[-1.25], x, [1.25]])
        y = np.concatenate([[1.5], y, [1.5]])
        _poly(img, _project(f, x, y, np.zeros_like(x)), hair)
    for sgn in (-1.0, 1.0):  # ears
        e = _project(f, sgn * (0.98 + 0.1 * np.sin(np.linspace(0, np.pi, 12))),
                     np.linspace(-0.15, 0.45, 12), np.zeros(12))
        _poly(img, e, _shade(skin, 0.88))
    _poly(img, head, skin)
    if f.hair_style:  # hair on the crown down to the hairline
        phi = np.linspace(-np.pi / 2, np.pi / 2, 41)
        top_x, top_y = _cranium(phi)
        line_x = np.linspace(1.0, -1.0, 41)
        line_y = f.hairline + 0.25 * line_x**2 - 0.05 * np.cos(line_x * 7)
        x = np.concatenate([top_x * 1.04, line_x])
        y = np.concatenate([top_y * 1.04 + 0.02, np.minimum(line_y, -0.2)])
        _poly(img, _project(f, x, y, _depth(x, y)), hair)
    # eyes: white, iris and pupil clipped to the lids, lid lines
    for side in ("r", "l"):
        eye = np.vstack([pts(f"upper_{side}"), pts(f"lower_{side}")[::-1]])
        layer = img.copy()
        _poly(layer, eye, (236, 232, 226))
        mid = eye.mean(axis=0)
        gaze = np.array([f.scale * 0.03 * np.sin(f.yaw), 0.0])
        _disc(layer, mid + gaze, f.scale * 0.085, f.iris)
        _disc(layer, mid + gaze, f.scale * 0.035, (12, 10, 10))
        _disc(layer, mid + gaze + f.scale * np.array([0.025, -0.025]), f.scale * 0.015,
              (250, 250, 250))
        m = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(m, [_fix(eye)], (255,), cv2.LINE_8, _SHIFT)
        cv2.copyTo(layer, m, img)
        _line(img, pts(f"upper_{side}"), (40, 25, 20), round(f.scale * 0.035))
        _line(img, pts(f"lower_{side}"), _shade(skin, 0.7), 1)
    for side in ("r", "l"):
        _line(img, pts(f"brow_{side}"), _shade(hair, 0.8), round(f.scale * 0.07))
    # nose: a shaded side of the bridge, the base line and nostrils
    side = 1.0 if f.yaw >= 0 else -1.0
    bridge = pts("bridge") + np.array([side * f.scale * 0.05, 0.0])
    _line(img, bridge[8:], _shade(skin, 0.82), round(f.scale * 0.04))
    base_pts = pts("nose_base")
    _line(img, base_pts, _shade(skin, 0.6), round(f.scale * 0.025))
    for i in (5, 19):
        _disc(img, base_pts[i] + np.array([0.0, -f.scale * 0.02]), f.scale * 0.03, (60, 35, 30))
    _disc(img, pts("bridge")[-1], f.scale * 0.05, _shade(skin, 1.07))
    # mouth
    lips = np.vstack([pts("lip_top"), pts("lip_bottom")[::-1]])
    lip = (tuple(float(v) for v in (np.array(skin) * 0.75 + np.array([190, 70, 80]) * 0.25))
           if rng.random() < 0.8 else _shade(skin, 0.85))
    _poly(img, lips, lip)
    inner = np.vstack([pts("inner_top"), pts("inner_bottom")[::-1]])
    if f.mouth_open > 0.02:
        _poly(img, inner, (70, 20, 30))
        teeth = np.vstack([pts("inner_top"), pts("inner_top")[::-1] +
                           np.array([0.0, f.scale * min(0.05, f.mouth_open * 0.4)])])
        _poly(img, teeth, (235, 230, 215))
    else:
        _line(img, pts("inner_top"), (90, 35, 40), round(f.scale * 0.02))
    _line(img, pts("jaw")[20:-20], _shade(skin, 0.85), 1)
    # lighting gradient, blur, sensor noise
    xx, yy = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.1, 0.45) * (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5))
    img = img.astype(np.float32) * light[..., None] * rng.uniform(0.8, 1.15)
    img = cv2.GaussianBlur(img, (3, 3), 0.7)
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(1.0, 6.0)
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- project


def make_demo(path: str | Path, n: int = 300, seed: int = 0, noise: str = DEFAULT_NOISE,
              progress: Callable[[int], None] | None = None) -> Path:
    """Create the demo project at ``path`` (refused if it exists): ``n`` drawn faces in
    ``<stem>-images/`` beside it, about 10% in the val split, the training labels
    contaminated with ``noise`` (seeded). ``progress(faces done)``. Returns the path."""
    path = Path(path)
    folder = path.with_name(path.stem + "-images")
    project = Project.create(path, IBUG68)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        cache = ImageCache(project.cache_dir, CACHE_SIZE)
        records = []
        for i in range(n):
            face = random_face(rng)
            rgb = draw_face(face, rng)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 90])
            data = buf.tobytes()
            name = f"face_{i:04d}.jpg"
            (folder / name).write_bytes(data)
            points = landmarks(face)
            (folder / f"face_{i:04d}.pts").write_text(format_pts(points))
            decoded = decode_image(data, folder / name)[0]  # what the cache would hold
            records.append((NewSample(key=name, path=name, width=SIZE, height=SIZE,
                                      content_hash=content_hash(data), points=points,
                                      split=split_for(name)), decoded))
            if progress is not None:
                progress(i + 1)
        source = project.add_source(folder, "pts", "landmarks")
        ids = project.add_samples(source, [s for s, _ in records])
        for sid, (s, image) in zip(ids, records, strict=True):
            lb = letterbox_for(s.width, s.height, None, CACHE_SIZE)
            cache.put(sid, s.content_hash, letterbox(image, lb), lb, path=folder / s.path)
        cache.flush()
        project.complete_source(source)
        project.set_meta("image_size", str(CACHE_SIZE))
        if noise:
            apply_noise(project, noise, seed)
    finally:
        project.close()
    return path
