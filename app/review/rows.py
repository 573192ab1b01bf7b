"""Read a stored row's field whether the store hands it over as a dict (a plain
query) or as a typed record (a frozen dataclass)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def field(row: Any, name: str, default: Any = None) -> Any:
    if row is None:
        return default
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)
