"""Progress bars for long CLI work (tqdm on stderr, quiet when not a terminal)."""

from __future__ import annotations

from tqdm import tqdm


def bar(desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=None, dynamic_ncols=True, leave=False)
