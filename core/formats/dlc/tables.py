"""DeepLabCut's CollectedData tables: parsing the CSV and the .h5, writing both."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError
from core.formats.common import number
from core.formats.csv_format import text_rows
from core.formats.guard import (
    LABEL_FILE_LIMIT,
    check_regular,
    split_path,
)

H5_KEY = "df_with_missing"


# ----------------------------------------------------------------------------- tables


@dataclass
class Table:
    """One CollectedData file: per column (individual, bodypart, coord), and per row the
    image path parts and the cells (floats, NaN for empty) or why the row is broken."""

    path: Path
    scorer: str
    columns: list[tuple[str | None, str, str]]
    rows: list[tuple[str, tuple[str, ...], list[float] | str]] = field(default_factory=list)
    # row: (":line" or ":row n", image path parts, values or reason)

    @property
    def multi(self) -> bool:
        return any(ind is not None for ind, _, _ in self.columns)


def _cell_value(text: str, what: str) -> float:
    text = text.strip()
    if not text or text.lower() == "nan":
        return math.nan
    return number(text, what)


def parse_csv(path: Path, text: str) -> Table:
    """A CollectedData CSV; FormatError for a header DeepLabCut would not write."""
    rows = list(text_rows(text))
    header: dict[str, list[str]] = {}
    for key in ("scorer", "individuals", "bodyparts", "coords"):
        if rows and not isinstance(rows[0][1], str) and rows[0][1] and \
                rows[0][1][0].strip() == key:
            header[key] = rows.pop(0)[1]  # type: ignore[assignment]
    if "scorer" not in header or "bodyparts" not in header or "coords" not in header:
        raise FormatError(f"{path}: not a DeepLabCut table (header rows scorer, [individuals,] "
                          "bodyparts, coords expected)")
    first = header["scorer"]
    n_index = 1
    while n_index < len(first) and not first[n_index].strip():
        n_index += 1
    width = len(first)
    if any(len(r) != width for r in header.values()) or n_index >= width:
        raise FormatError(f"{path}: header rows have different lengths or no data column")
    scorers = {c.strip() for c in first[n_index:]}
    inds = header.get("individuals")
    columns = [(inds[j].strip() if inds else None, header["bodyparts"][j].strip(),
                header["coords"][j].strip()) for j in range(n_index, width)]
    table = Table(path, sorted(scorers)[0], columns)
    _check_columns(table)
    for line, row in rows:
        where = f":{line}"
        if isinstance(row, str):
            table.rows.append((where, (), row))
            continue
        if len(row) != width:
            table.rows.append((where, (), f"expected {width} cells, found {len(row)}"))
            continue
        try:
            parts = split_path("/".join(c.strip() for c in row[:n_index] if c.strip()))
            values = [_cell_value(row[n_index + j], f"{bp} {coord}")
                      for j, (_, bp, coord) in enumerate(columns)]
        except ValueError as exc:
            table.rows.append((where, (), str(exc)))
            continue
        table.rows.append((where, parts, values))
    return table


def parse_h5(path: Path) -> Table:
    """A CollectedData ``.h5`` (pandas/PyTables); FormatError if it is not one."""
    import pandas as pd

    try:
        check_regular(path, LABEL_FILE_LIMIT)
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            key = f"/{H5_KEY}" if f"/{H5_KEY}" in keys else (keys[0] if keys else None)
            if key is None:
                raise ValueError("no table in the file")
            df = store[key]
    except ImportError as exc:
        raise FormatError(f"{path}: reading .h5 needs PyTables ({exc})") from None
    except Exception as exc:  # HDF5, PyTables and pandas raise many kinds
        raise FormatError(f"{path}: not a readable DeepLabCut .h5 "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
                          ) from None
    if not isinstance(df, pd.DataFrame) or df.columns.nlevels not in (3, 4):
        raise FormatError(f"{path}: not a DeepLabCut table (MultiIndex columns expected)")
    names = list(df.columns.names)
    multi = df.columns.nlevels == 4
    columns = [(str(c[1]) if multi else None, str(c[-2]), str(c[-1])) for c in df.columns]
    if names[0] not in (None, "scorer"):
        raise FormatError(f"{path}: first column level is {names[0]!r}, not 'scorer'")
    table = Table(path, str(df.columns[0][0]), columns)
    _check_columns(table)
    values = df.to_numpy(dtype=np.float64, na_value=np.nan) if len(df) else np.zeros((0, 0))
    for n, idx in enumerate(df.index):
        where = f":row {n}"
        try:
            text = "/".join(str(p) for p in idx) if isinstance(idx, tuple) else str(idx)
            parts = split_path(text)
        except ValueError as exc:
            table.rows.append((where, (), str(exc)))
            continue
        table.rows.append((where, parts, [float(v) for v in values[n]]))
    return table


def _check_columns(table: Table) -> None:
    bad = sorted({c for _, _, c in table.columns} - {"x", "y", "likelihood"})
    if bad:
        raise FormatError(f"{table.path}: unknown coords {', '.join(bad)} (x, y, likelihood)")
    seen = {(ind, bp, c) for ind, bp, c in table.columns}
    if len(seen) != len(table.columns):
        raise FormatError(f"{table.path}: a bodypart column appears twice")
    for ind, bp, c in table.columns:
        if c in ("x", "y") and (ind, bp, "y" if c == "x" else "x") not in seen:
            raise FormatError(f"{table.path}: bodypart {bp!r} has {c} but no {'y' if c == 'x' else 'x'}")



def write_table(df: Any, path: Path) -> None:
    """``path`` as DeepLabCut writes it: ``.h5`` under ``df_with_missing`` in table
    format, or ``.csv``."""
    if path.suffix.lower() == ".h5":
        df.to_hdf(path, key=H5_KEY, format="table", mode="w")
        _stamp_pandas_version(path)
    else:
        df.to_csv(path)


def _stamp_pandas_version(path: Path) -> None:
    """pandas 3 no longer stores ``pandas_version`` on a table; pandas 1.x and 2.x (what
    DeepLabCut runs on) then take the file for one from pandas 0.10 and look for columns
    under old names, failing with "'NoneType' object has no attribute 'startswith'".
    Every pandas 1.x/2.x writes "0.15.2" (the table layout's version): so do we, and
    the empty ``metadata`` list they write too."""
    import tables

    with tables.open_file(path, mode="a") as f:
        attrs = f.get_node(f"/{H5_KEY}")._v_attrs
        have = set(attrs._f_list("user"))
        if "pandas_version" not in have:
            attrs.pandas_version = "0.15.2"
        if "metadata" not in have:
            attrs.metadata = []


