"""The image cache's data file, row by row: the layout of a row (the letterboxed
``S x S`` uint8 image and its 32-byte trailer: the sample id, the digest of the
source file, a magic number) and :class:`CachedImages`, the read-only view of
rows a trainer and its loader workers map, and the check that a row carries
the sample it should (:mod:`core.image_cache` writes them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAGIC = b"GSR1"


def digest_bytes(hex_hash: str) -> bytes:
    """A content hash (40 hex digits) as the 20 bytes a row's trailer holds."""
    if len(hex_hash) != 40:
        raise ValueError(f"content hash {hex_hash!r} is not 40 hex digits")
    return bytes.fromhex(hex_hash)


def rows_hold(data_path: Path, size: int, rows: int, slots: np.ndarray,
              sample_ids: np.ndarray, hashes: Sequence[str]) -> np.ndarray:
    """Per slot: does that row of the data file (``rows`` rows long) exist and carry
    the sample id, the content digest and the magic number it should?"""
    ok = slots < rows
    if not len(slots) or not rows:
        return ok
    mm = np.memmap(data_path, row_dtype(size), "r", shape=(rows,))
    try:
        idx = np.where(ok, slots, 0)
        sids = np.asarray(mm["sample"][idx])
        digests = np.asarray(mm["digest"][idx])
        magic = np.asarray(mm["magic"][idx])
    finally:
        del mm
    want = np.frombuffer(b"".join(digest_bytes(h) for h in hashes), np.uint8)
    ok &= sids == sample_ids
    ok &= (digests == want.reshape(-1, 20)).all(axis=1)
    ok &= (magic == np.frombuffer(MAGIC, np.uint8)).all(axis=1)
    return ok


def row_dtype(size: int) -> np.dtype:
    return np.dtype([("image", np.uint8, (size, size, 3)), ("sample", "<i8"),
                     ("digest", np.uint8, (20,)), ("magic", np.uint8, (4,))])


class CachedImages:
    """Rows of an image cache's data file, read through a read-only memory map:
    ``images[index]`` is a (len(index), S, S, 3) uint8 array (a copy), ``len`` the
    number of rows. The file only ever grows, so a map of its older length stays
    valid while an import adds images."""

    def __init__(self, data_path: Path, size: int, slots: np.ndarray, capacity: int) -> None:
        self.path = data_path
        self.size = size
        self.slots = slots
        self._mm = (np.memmap(data_path, row_dtype(size), "r", shape=(capacity,))
                    if capacity and len(slots) else None)

    def __len__(self) -> int:
        return len(self.slots)

    def __reduce__(self) -> tuple[type[CachedImages], tuple[Path, int, np.ndarray, int]]:
        # another process (a data-loader worker) maps the file itself: never a pickled
        # copy of the rows
        capacity = 0 if self._mm is None else int(self._mm.shape[0])
        return (CachedImages, (self.path, self.size, self.slots, capacity))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.slots), self.size, self.size, 3)

    @property
    def nbytes(self) -> int:
        return len(self.slots) * self.size * self.size * 3

    def __getitem__(self, index: np.ndarray | Sequence[int] | slice) -> np.ndarray:
        slots = self.slots[index]
        if self._mm is None or len(slots) == 0:
            return np.zeros((len(slots), self.size, self.size, 3), np.uint8)
        # sorted reads walk the file forwards; the rows come back in the asked order
        order = np.argsort(slots, kind="stable")
        out = np.empty((len(slots), self.size, self.size, 3), np.uint8)
        out[order] = self._mm["image"][slots[order]]
        return out
