"""``--format dlc``: samples from a DeepLabCut project or one table."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import rel_key
from core.formats.dlc.project import (
    CONFIG,
    PREFIX,
    SINGLE,
    config_bodyparts,
    config_skeleton,
    find_config,
    header_bodyparts,
    is_collected,
    load_config,
    looks_like_table_csv,
    project_root,
    read_tables,
)
from core.formats.dlc.tables import Table
from core.formats.guard import (
    inside,
)
from core.project import LabelSchema
from core.schemas import schema_for_keypoints


class DlcReader:
    name = "dlc"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        return project_root(Path(source))

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if source.is_file():
            if is_collected(source):
                return True
            return source.suffix.lower() == ".csv" and looks_like_table_csv(source)
        if not source.is_dir():
            return False
        if (source / CONFIG).is_file() and (source / "labeled-data").is_dir():
            return True
        return any(is_collected(p) for p in source.glob(f"{PREFIX}*")) or any(
            is_collected(p) for p in source.glob(f"labeled-data/*/{PREFIX}*"))

    def _config(self, source: Path) -> tuple[dict[str, Any] | None, Path | None]:
        path = find_config(Path(source))
        return (None, None) if path is None else (load_config(path), path)

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: DeepLabCut labels are landmarks, not {task!r}")
        cfg, path = self._config(source)
        names = config_bodyparts(cfg, path) if cfg is not None else []  # type: ignore[arg-type]
        if not names or names == ["MULTI!"]:
            names = header_bodyparts(Path(source))
        skeleton = config_skeleton(cfg, names) if cfg is not None else []
        task_name = str(cfg.get("Task") or "") if cfg is not None else ""
        try:
            return schema_for_keypoints(names, skeleton, name=task_name or "dlc")
        except ValueError as exc:
            raise FormatError(f"{path or source}: {exc}") from None

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        source = Path(source)
        schema = self.schema(source, task)
        cfg, _ = self._config(source)
        scorer = str(cfg.get("scorer") or "") if cfg else None
        root = project_root(source)
        for table in read_tables(source, scorer):
            if isinstance(table, Skip):
                yield table
                continue
            yield from _table_items(table, schema, root)


def _table_items(table: Table, schema: LabelSchema, root: Path) -> Iterator[RawItem | Skip]:
    index = {n: i for i, n in enumerate(schema.keypoints)}
    where_file = rel_key(table.path, root)
    ignored = sorted({bp for ind, bp, _ in table.columns if bp not in index and ind != SINGLE})
    if ignored:
        yield Skip(where_file, f"bodyparts not in the schema left out: {', '.join(ignored)}")
    unique = sorted({bp for ind, bp, _ in table.columns if ind == SINGLE})
    if unique:
        yield Skip(where_file, "unique bodyparts not imported (a project holds one keypoint "
                               f"set): {', '.join(unique)}")
    # column positions of x and y per (individual, keypoint index)
    slots: dict[str | None, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [-1, -1]))
    for j, (ind, bp, coord) in enumerate(table.columns):
        if ind != SINGLE and bp in index and coord in ("x", "y"):
            slots[ind][index[bp]]["xy".index(coord)] = j
    k = schema.n_keypoints
    for line, parts, values in table.rows:
        where = where_file + line
        if isinstance(values, str):
            yield Skip(where, values)
            continue
        image = _find_image(parts, root, table.path.parent)
        key = "/".join(parts)
        if isinstance(image, str):
            yield Skip(where, image)
            continue
        found = 0
        for ind, cols in slots.items():
            points = np.full((k, 2), np.nan)
            problem = None
            for i, (jx, jy) in cols.items():
                x, y = values[jx], values[jy]
                if math.isnan(x) != math.isnan(y):
                    problem = f"{schema.keypoints[i]}: x and y must both be empty or both numbers"
                    break
                if math.isinf(x) or math.isinf(y):
                    problem = f"{schema.keypoints[i]}: not a finite number"
                    break
                points[i] = x, y
            if problem is not None:
                yield Skip(where if ind is None else f"{where}#{ind}", problem)
                found += 1
                continue
            vis = np.where(np.isfinite(points).all(axis=1), 2, 0).astype(np.int8)
            if not vis.any():
                continue  # this individual is not in the frame
            found += 1
            yield RawItem(key if ind is None else f"{key}#{ind}", image, points, vis)
        if not found:
            yield Skip(where, f"{key}: no labelled point")


def _find_image(parts: tuple[str, ...], root: Path, folder: Path) -> Path | str:
    """The image a row names: under the project folder, else beside the table (a
    moved or renamed project); a reason if it is not there or leaves the project."""
    if not parts:
        return "empty image path"
    try:
        path = inside(root, "/".join(parts))
    except ValueError as exc:
        return str(exc)
    if path.is_file():
        return path
    beside = folder / parts[-1]
    if parts[-1] not in ("..", ".") and beside.is_file():
        return beside
    return f"image missing: {'/'.join(parts)}"


