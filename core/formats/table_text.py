"""Numbers as CSV text a whole table at a time (numpy, no Python work per cell).

A million samples with 68 landmarks are 136 million coordinates: formatting them one
``repr`` at a time takes minutes. Coordinates stored by the project lie on a grid of
1/10000 px, and for those the shortest text that reads back exactly (what
:func:`core.formats.common.fmt` writes) is the integer part, then the four decimals
without their trailing zeros (none, and no point, for a whole number). Those pieces
come from two lookup tables; a chunk of rows is laid out as fixed-width slots of
bytes padded with NUL, and dropping the NULs leaves the CSV text, in one step. Values
off the grid are left to the caller (:func:`on_grid`).
"""

from __future__ import annotations

from functools import cache

import numpy as np

SCALE = 10_000  # four decimals
INT_LIMIT = 1 << 18  # whole parts with a lookup entry (labels lie within +-214 748 px)
Q_LIMIT = 2**31 - 1  # values on the grid fit int32 (as the project stores them)
ROW_END = b"\r\n"  # what csv.writer ends a row with
_EMPTY = 2 * INT_LIMIT  # the entry of an empty cell: "," alone
COMMA, ZERO = ord(","), ord("0")


def _slots(texts: list[str]) -> np.ndarray:
    """Each text as 8 bytes, padded with NUL (the byte the layout drops), as uint64."""
    joined = "".join(t.ljust(8, "\0") for t in texts).encode("ascii")
    return np.frombuffer(joined, np.uint64).copy()


def _whole_slots(sign: str) -> np.ndarray:
    """``,{sign}{i}`` for every whole part i, as :func:`_slots` (built with numpy)."""
    i = np.arange(INT_LIMIT)
    n_digits = np.ones(INT_LIMIT, np.int64)
    for d in range(1, 7):
        n_digits += i >= 10**d
    out = np.zeros((INT_LIMIT, 8), np.uint8)
    out[:, 0] = COMMA
    if sign:
        out[:, 1] = ord(sign)
    at = 1 + len(sign)
    for j in range(8 - at):  # the j-th digit from the left
        power = 10 ** np.maximum(n_digits - 1 - j, 0)
        out[:, at + j] = np.where(j < n_digits, ZERO + (i // power) % 10, 0)
    return out.view(np.uint64).ravel()


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(",whole" then ",-whole" for every whole part, then ","; ".dddd" for every four
    decimals, "" for none), 8 bytes each."""
    return (np.concatenate([_whole_slots(""), _whole_slots("-"), _slots([","])]),
            _slots(["." + f"{f:04d}".rstrip("0") if f else "" for f in range(SCALE)]))


def on_grid(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (float64) as integers in 1/10000 and whether each one is exactly that
    (NaN and infinities are not; neither is anything beyond +-214 748.3647)."""
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.rint(values * SCALE)
        ok = np.isfinite(scaled) & (np.abs(scaled) <= Q_LIMIT)
        q = np.where(ok, scaled, 0).astype(np.int64)
        ok &= q / SCALE == values
    return q, ok


def _up8(n: int) -> int:
    return -(-n // 8) * 8


def rows_text(prefixes: list[bytes], q: np.ndarray, empty: np.ndarray,
              digits: np.ndarray | None = None, digits_empty: np.ndarray | None = None,
              text_rows: np.ndarray | None = None) -> bytes:
    """CSV rows: row i is ``prefixes[i]`` (which must not hold a NUL byte), then ``,x``
    for each value of ``q[i]`` (integers in 1/10000, see :func:`on_grid`; ``,`` alone
    where ``empty``), then ``,d`` for each of ``digits[i]`` (0-9; ``,0`` where
    ``digits_empty``), then ``\\r\\n``. Rows in ``text_rows`` are their prefix alone
    (the caller wrote their values into it).

    Every piece goes into a fixed-width slot padded with NUL bytes; dropping the NULs
    leaves the text."""
    n, c = q.shape
    k = 0 if digits is None else digits.shape[1]
    p_w = _up8(max(map(len, prefixes), default=0))
    d_w = _up8(2 * k)
    width = p_w + 16 * c + d_w + 8
    buf = np.empty((n, width), np.uint8)  # every byte is written below
    buf[:, :p_w] = np.frombuffer(b"".join(p.ljust(p_w, b"\0") for p in prefixes),
                                 np.uint8).reshape(n, p_w)
    wholes, decimals = _tables()
    a = np.abs(q)
    whole = a // SCALE
    frac = a - whole * SCALE
    negative = q < 0
    if negative.any():
        whole += INT_LIMIT * negative
    if empty.any():
        whole[empty] = _EMPTY
        frac[empty] = 0
    cells = buf[:, p_w:p_w + 16 * c].view(np.uint64).reshape(n, c, 2)
    np.take(wholes, whole, out=cells[..., 0])
    np.take(decimals, frac, out=cells[..., 1])
    start = p_w + 16 * c
    buf[:, start:] = 0
    if k:
        assert digits is not None and digits_empty is not None
        d = buf[:, start:start + 2 * k].reshape(n, k, 2)
        d[..., 0] = COMMA
        d[..., 1] = np.where(digits_empty, ZERO, ZERO + digits)
    if text_rows is not None and text_rows.any():
        buf[text_rows, p_w:start + d_w] = 0
    buf[:, width - 8:width - 8 + len(ROW_END)] = np.frombuffer(ROW_END, np.uint8)
    return buf.tobytes().translate(None, b"\0")
