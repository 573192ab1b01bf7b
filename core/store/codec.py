"""How values are stored: little-endian binary arrays for per-landmark data, JSON
(decoded defensively) for small settings, and the SQL that expands the arrays
for Datasette (used by the views in :mod:`core.store.schema`).

Formats (all little-endian; the sizes are for K = 68 landmarks):

* label ``points``: int32 (x, y) per landmark in steps of 1/10000 px, -2^31 where
  missing (544 B): exactly the four decimals the v1 store kept, over +-214 748 px.
* label ``visibility``: uint8 per landmark; NULL when it is the default (2 where the
  point is present, 0 where missing), which it is for most datasets.
* score ``landmark_scores`` and stored ``landmark_probs``: float32 (272 B).
* score ``prediction``: uint16 steps over the row's own range, ``value = lo + q * step``
  with ``lo``/``step`` in REAL columns, 65535 for a missing value (272 B). The error is
  at most ``step / 2`` = span / 131068: 0.003 px for a 200 px face, 0.07 px for points
  spread over 8192 px, while the model sees the image at 64-512 px (one input pixel
  is 16 px or more of an 8192 px image); a single value (an age) is stored exactly.
* score ``prediction_std``: float16 (2 B a value). An uncertainty carries no more
  than two significant digits; float16 keeps three (relative step 1/1024) and spans
  6e-5 to 65504 (values beyond are clipped).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MAX_JSON_CHARS = 16 * 1024 * 1024
Q16_MISSING = 65535
Q16_STEPS = 65534
F16_MAX = 65504.0


# --------------------------------------------------------------------------- JSON


def load_json(text: Any, what: str) -> Any:
    """``json.loads`` for stored text: garbage, deep nesting or a huge value raise one
    ValueError line naming ``what`` instead of a traceback."""
    if not isinstance(text, (str, bytes)):
        raise ValueError(f"malformed {what} (stored as {type(text).__name__}, not JSON text)")
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"malformed {what} ({len(text)} characters of JSON)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError, TypeError) as exc:
        msg = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise ValueError(f"malformed {what} ({msg})") from None


def json_object(text: Any, what: str) -> dict[str, Any]:
    value = load_json(text, what)
    if not isinstance(value, dict):
        raise ValueError(f"malformed {what} (not a JSON object)")
    return value


def decode_box(text: Any) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    value = load_json(text, "box")
    if not (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) for v in value)):
        raise ValueError("malformed box (not four finite numbers)")
    return (float(value[0]), float(value[1]), float(value[2]), float(value[3]))


def encode_box(box: Sequence[float] | None) -> str | None:
    return None if box is None else json.dumps([float(v) for v in box])


# --------------------------------------------------------------------------- labels


POINT_SCALE = 10_000  # label coordinates are stored in 1/10000 px
POINT_MISSING = -(2**31)
POINT_LIMIT = (2**31 - 1) / POINT_SCALE


def encode_points(points: np.ndarray | Sequence[Sequence[float]] | None) -> bytes | None:
    if points is None:
        return None
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(pts).all(axis=1, keepdims=True)
    if (np.abs(np.where(ok, pts, 0.0)) >= POINT_LIMIT).any():
        raise ValueError(f"a landmark lies beyond +-{POINT_LIMIT:.0f} px")
    q = np.where(ok, np.rint(np.where(ok, pts, 0.0) * POINT_SCALE), POINT_MISSING)
    return q.astype("<i4").tobytes()


def decode_points(blob: bytes | None) -> np.ndarray | None:
    if blob is None:
        return None
    if not isinstance(blob, bytes) or len(blob) % 8:
        raise ValueError("malformed points (not int32 (x, y) pairs)")
    q = np.frombuffer(blob, "<i4").reshape(-1, 2)
    return np.where(q == POINT_MISSING, np.nan, q / POINT_SCALE)


def default_visibility(points: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(points).all(axis=1), 2, 0).astype(np.int8)


def encode_visibility(visibility: Any, points: np.ndarray | None) -> bytes | None:
    """uint8 per landmark, or None where it equals :func:`default_visibility`."""
    if points is None:
        return None
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if visibility is None:
        return None
    vis = np.asarray(visibility).reshape(-1).astype(np.int64)
    if len(vis) != len(pts):
        raise ValueError(f"{len(vis)} visibility values for {len(pts)} points")
    if ((vis < 0) | (vis > 2)).any():
        raise ValueError("visibility values must be 0, 1 or 2")
    if np.array_equal(vis, default_visibility(pts)):
        return None
    return vis.astype(np.uint8).tobytes()


def decode_visibility(blob: bytes | None, points: np.ndarray | None) -> np.ndarray | None:
    if points is None:
        return None
    if blob is None:
        return default_visibility(points)
    if not isinstance(blob, bytes) or len(blob) != len(points):
        raise ValueError("malformed visibility")
    return np.frombuffer(blob, np.uint8).astype(np.int8)


# --------------------------------------------------------------------------- score arrays


def _floats(values: Iterable[float | None] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64).reshape(-1)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def encode_f32(values: Iterable[float | None] | np.ndarray | None) -> bytes | None:
    if values is None:
        return None
    return _floats(values).astype("<f4").tobytes()


def decode_f32(blob: bytes | None) -> tuple[float, ...] | None:
    if blob is None:
        return None
    if not isinstance(blob, bytes) or len(blob) % 4:
        raise ValueError("malformed float32 array")
    return tuple(np.frombuffer(blob, "<f4").astype(np.float64).tolist())


def encode_f16(values: Iterable[float | None] | np.ndarray | None) -> bytes | None:
    if values is None:
        return None
    v = _floats(values)
    v = np.where(np.isnan(v), np.nan, np.clip(v, -F16_MAX, F16_MAX))
    return v.astype("<f2").tobytes()


def decode_f16(blob: bytes | None) -> tuple[float, ...] | None:
    if blob is None:
        return None
    if not isinstance(blob, bytes) or len(blob) % 2:
        raise ValueError("malformed float16 array")
    return tuple(np.frombuffer(blob, "<f2").astype(np.float64).tolist())


def encode_q16(values: Iterable[float | None] | np.ndarray | None
               ) -> tuple[bytes | None, float | None, float | None]:
    """(blob, lo, step): ``value = lo + q * step``; see the module docstring."""
    if values is None:
        return None, None, None
    v = _floats(values)
    ok = np.isfinite(v)
    if not ok.any():
        return np.full(len(v), Q16_MISSING, "<u2").tobytes(), 0.0, 0.0
    lo, hi = float(v[ok].min()), float(v[ok].max())
    step = (hi - lo) / Q16_STEPS
    q = np.zeros(len(v)) if step == 0 else np.rint((np.where(ok, v, lo) - lo) / step)
    q = np.where(ok, np.clip(q, 0, Q16_STEPS), Q16_MISSING)
    return q.astype("<u2").tobytes(), lo, step


def encode_q16_rows(values: np.ndarray) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """:func:`encode_q16` for each row of an (N, D) array at once (the fast path for
    columnar writes)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    any_ok = ok.any(axis=1)
    with np.errstate(invalid="ignore"):
        lo = np.where(any_ok, np.nanmin(np.where(ok, v, np.nan), axis=1), 0.0)
        hi = np.where(any_ok, np.nanmax(np.where(ok, v, np.nan), axis=1), 0.0)
    step = (hi - lo) / Q16_STEPS
    safe = np.where(step > 0, step, 1.0)[:, None]
    q = np.where(step[:, None] > 0, np.rint((np.where(ok, v, lo[:, None]) - lo[:, None]) / safe), 0)
    q = np.where(ok, np.clip(q, 0, Q16_STEPS), Q16_MISSING).astype("<u2")
    return [r.tobytes() for r in q], lo, step


def decode_q16(blob: bytes | None, lo: float | None, step: float | None) -> tuple[float, ...] | None:
    if blob is None:
        return None
    if not isinstance(blob, bytes) or len(blob) % 2 or lo is None or step is None:
        raise ValueError("malformed prediction")
    q = np.frombuffer(blob, "<u2")
    out = float(lo) + q.astype(np.float64) * float(step)
    return tuple(np.where(q == Q16_MISSING, np.nan, out).tolist())


def worst_index(values: Iterable[float | None] | np.ndarray | None) -> int | None:
    """Index of the highest finite value (the worst landmark), or None."""
    if values is None:
        return None
    v = _floats(values)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    return int(np.argmax(np.where(ok, v, -np.inf)))


def sigmoid(values: Sequence[float]) -> tuple[float, ...]:
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        return tuple((1.0 / (1.0 + np.exp(-v))).tolist())


def probs_to_store(scores: Any, probs: Any, has_prob: bool) -> bytes | None:
    """Landmark probabilities are stored only when they are not sigmoid(scores) (what
    every method writes today): otherwise they are derived on reading."""
    if probs is None:
        return None
    p = _floats(probs)
    if has_prob and scores is not None:
        s = _floats(scores)
        if s.shape == p.shape:
            with np.errstate(over="ignore"):
                derived = 1.0 / (1.0 + np.exp(-s))
            if np.allclose(p, derived, rtol=0, atol=1e-6, equal_nan=True):
                return None
    return p.astype("<f4").tobytes()


# --------------------------------------------------------------------------- SQL decoders


def _hex_byte(hex_expr: str, k: int) -> str:
    """The k-th byte (0-based) of an upper-case hex string, as an integer."""
    hi = f"(instr('0123456789ABCDEF', substr({hex_expr}, {2 * k + 1}, 1)) - 1)"
    lo = f"(instr('0123456789ABCDEF', substr({hex_expr}, {2 * k + 2}, 1)) - 1)"
    return f"({hi} * 16 + {lo})"


def sql_uint(blob: str, index: str, width: int) -> str:
    """SQL for the little-endian unsigned integer of ``width`` bytes at element ``index``."""
    h = f"hex(substr({blob}, {index} * {width} + 1, {width}))"
    return " + ".join(f"{_hex_byte(h, k)} * {1 << (8 * k)}" for k in range(width))


def _pow2(k: str) -> str:
    """2^k as a REAL for an integer k in [-186, 124], with integer shifts only (no math
    functions needed: Datasette's SQLite may be built without them)."""
    return (f"(CASE WHEN ({k}) >= 0 THEN (1 << min({k}, 62)) * 1.0 * (1 << max(({k}) - 62, 0)) "
            f"ELSE 1.0 / (1 << min(-({k}), 62)) / (1 << min(max(-({k}) - 62, 0), 62)) "
            f"/ (1 << max(-({k}) - 124, 0)) END)")


def sql_float(bits: str, width: int) -> str:
    """SQL that decodes IEEE-754 bits (float32: width 4, float16: width 2); NaN and
    infinities read as NULL."""
    exp_bits, man_bits = (8, 23) if width == 4 else (5, 10)
    bias = (1 << (exp_bits - 1)) - 1
    e = f"((({bits}) >> {man_bits}) & {(1 << exp_bits) - 1})"
    m = f"(({bits}) & {(1 << man_bits) - 1})"
    sign = f"(1 - 2 * ((({bits}) >> {exp_bits + man_bits}) & 1))"
    mant = f"(CASE WHEN {e} = 0 THEN {m} ELSE {m} + {1 << man_bits} END)"
    scale = _pow2(f"max({e}, 1) - {bias + man_bits}")
    return f"(CASE WHEN {e} = {(1 << exp_bits) - 1} THEN NULL ELSE {sign} * {mant} * {scale} END)"
