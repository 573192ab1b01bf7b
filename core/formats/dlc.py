"""DeepLabCut labelled data: a project folder or one ``CollectedData_<scorer>.csv``/``.h5``.

A DeepLabCut project keeps, per video, ``labeled-data/<video>/CollectedData_<scorer>.h5``
(a pandas table under the key ``df_with_missing``) and the same table as ``.csv``,
beside the extracted frames. Columns are a MultiIndex whose header rows are
``scorer``, (multi-animal projects only) ``individuals``, ``bodyparts`` and
``coords`` (``x``, ``y``; machine labels add ``likelihood``, ignored here). Rows
are images, their paths relative to the project folder, either one cell
(``labeled-data/video/img001.png``, ``\\`` on Windows) or, since DeepLabCut 2.3,
three (``labeled-data``, ``video``, ``img001.png``). An empty cell (NaN in the
``.h5``) means "not labelled": the point is missing, not at (0, 0).

Reading: the ``.h5`` of a video folder wins over its ``.csv`` (DeepLabCut trains
from the ``.h5``); the ``.csv`` is read when there is no ``.h5`` or it cannot be
read. Keys are the image path with ``/`` (``labeled-data/m4s1/img0000.png``), the
same from either file and either operating system; a multi-animal file gives one
sample per labelled individual, keyed ``path#individual``. ``config.yaml`` names
the bodyparts (their order is the schema's) and the skeleton; left/right flip
pairs come from the names (``leftear``/``rightear``, ``l_paw``/``r_paw``, ...;
see :func:`core.schemas.infer_flip_pairs`). Without a config the header's
bodyparts are used. Unique bodyparts of multi-animal projects (individual
``single``) are not imported: a project holds one keypoint set.

Writing (:func:`write`): a folder becomes a DeepLabCut project (``config.yaml``,
``labeled-data/<video>/`` with the images copied and ``CollectedData_<scorer>.h5``
+ ``.csv``); a ``.h5`` or ``.csv`` file name writes that one table and its twin
with the other suffix, to drop into an existing project's video folder. The
scorer is the source project's (its ``config.yaml``, else its ``CollectedData_``
file name), else ``gumshoe``.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import number, rel_key
from core.formats.guard import (
    LABEL_FILE_LIMIT,
    SMALL_FILE_LIMIT,
    check_regular,
    inside,
    read_text,
    split_path,
)
from core.project import Label, LabelSchema, Sample
from core.schemas import schema_for_keypoints

CONFIG = "config.yaml"
PREFIX = "CollectedData_"
H5_KEY = "df_with_missing"
SINGLE = "single"  # DeepLabCut's individual for unique bodyparts
DEFAULT_SCORER = "gumshoe"


# ----------------------------------------------------------------------------- config


def load_config(path: Path) -> dict[str, Any]:
    """A DeepLabCut ``config.yaml`` as a dict; FormatError naming the file otherwise."""
    import yaml

    try:
        doc = yaml.safe_load(read_text(path, SMALL_FILE_LIMIT))
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise FormatError(f"{path}: not readable YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: not a DeepLabCut config (no key: value pairs)")
    return doc


def _name_list(cfg: dict[str, Any], key: str, path: Path) -> list[str]:
    value = cfg.get(key) or []
    if isinstance(value, str):  # a bare 'MULTI!' or a single name
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise FormatError(f"{path}: {key} must be a list of names")
    return [str(v) for v in value]


def config_bodyparts(cfg: dict[str, Any], path: Path) -> list[str]:
    """The animal's bodyparts: ``multianimalbodyparts`` in a multi-animal project,
    else ``bodyparts``."""
    if cfg.get("multianimalproject"):
        return _name_list(cfg, "multianimalbodyparts", path)
    return _name_list(cfg, "bodyparts", path)


def config_skeleton(cfg: dict[str, Any], names: list[str]) -> list[tuple[int, int]]:
    """Skeleton edges by index; edges naming an unknown bodypart are left out."""
    index = {n: i for i, n in enumerate(names)}
    edges = []
    for edge in cfg.get("skeleton") or []:
        if isinstance(edge, list | tuple) and len(edge) == 2:
            a, b = index.get(str(edge[0])), index.get(str(edge[1]))
            if a is not None and b is not None and a != b:
                edges.append((a, b))
    return edges


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
    rows = list(_csv_rows(text))
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


def _csv_rows(text: str) -> Iterator[tuple[int, list[str] | str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, f"malformed CSV ({exc})"
            continue
        if any(c.strip() for c in row):
            yield reader.line_num, row


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


# ----------------------------------------------------------------------------- layout


def is_collected(path: Path) -> bool:
    return path.name.startswith(PREFIX) and path.suffix.lower() in (".csv", ".h5")


def _looks_like_table_csv(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(7).lstrip(b"\xef\xbb\xbf") == b"scorer,"
    except OSError:
        return False


def project_root(source: Path) -> Path:
    """The DeepLabCut project folder that image paths are relative to."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    if (folder / CONFIG).is_file():
        return folder
    if folder.parent.name == "labeled-data":
        return folder.parent.parent
    if folder.name == "labeled-data":
        return folder.parent
    return folder


def find_config(source: Path) -> Path | None:
    cfg = project_root(source) / CONFIG
    return cfg if cfg.is_file() else None


def table_files(source: Path, scorer: str | None) -> list[Path]:
    """The CollectedData files to read: the file itself, or one per video folder (the
    config's scorer's if there are several, ``.h5`` before ``.csv``)."""
    source = Path(source)
    if not source.is_dir():
        return [source]  # the parser refuses what is not a regular file
    folders: dict[Path, list[Path]] = defaultdict(list)
    labeled = source / "labeled-data"
    search = labeled if labeled.is_dir() else source
    for p in sorted(search.rglob(f"{PREFIX}*")):
        if is_collected(p) and not p.is_dir() and not any(
                part.startswith(".") for part in p.relative_to(search).parts):
            folders[p.parent].append(p)
    out = []
    for _, files in sorted(folders.items()):
        if scorer and any(f.stem == PREFIX + scorer for f in files):
            files = [f for f in files if f.stem == PREFIX + scorer]
        out.extend(sorted(files, key=lambda f: (f.stem, f.suffix.lower() != ".h5")))
    return out


def _tables(source: Path, scorer: str | None) -> Iterator[Table | Skip]:
    """Parsed tables, one per video folder and scorer (the .h5, else its .csv twin)."""
    root = project_root(source)
    done: set[tuple[Path, str]] = set()
    for f in table_files(source, scorer):
        if (f.parent, f.stem) in done:
            continue
        try:
            table = parse_h5(f) if f.suffix.lower() == ".h5" else parse_csv(f, _text(f))
        except FormatError as exc:
            if not Path(source).is_dir():
                raise
            yield Skip(rel_key(f, root), str(exc).split(": ", 1)[-1])
            continue
        done.add((f.parent, f.stem))
        yield table


def _text(path: Path) -> str:
    try:
        return read_text(path)
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None


def _header_bodyparts(source: Path) -> list[str]:
    for t in _tables(source, None):
        if isinstance(t, Table):
            names = [bp for ind, bp, c in t.columns if c == "x" and ind != SINGLE]
            return list(dict.fromkeys(names))
    raise FormatError(f"{source}: no readable {PREFIX}*.csv or .h5")


# ----------------------------------------------------------------------------- reader


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
            return source.suffix.lower() == ".csv" and _looks_like_table_csv(source)
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
            names = _header_bodyparts(Path(source))
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
        for table in _tables(source, scorer):
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


# ----------------------------------------------------------------------------- writer


def _source_config(sample: Sample) -> dict[str, Any] | None:
    path = Path(sample.root) / CONFIG
    if not path.is_file():
        return None
    try:
        return load_config(path)
    except FormatError:
        return None


def _source_scorer(sample: Sample, cfg: dict[str, Any] | None) -> str:
    if cfg and cfg.get("scorer"):
        return str(cfg["scorer"])
    for p in sorted(sample.image_path.parent.glob(f"{PREFIX}*")):
        if is_collected(p):
            return p.stem[len(PREFIX):]
    return DEFAULT_SCORER


def dlc_path(sample: Sample) -> tuple[str, str, str]:
    """``(labeled-data, video, image name)`` for a sample: its own path when it came
    from a DeepLabCut project, else a video folder named after its image's folder."""
    parts = Path(sample.path).parts
    if len(parts) == 3 and parts[0] == "labeled-data":
        return parts[0], parts[1], parts[2]
    if Path(sample.path).is_absolute() or ".." in parts:  # an image outside its source root
        parts = sample.image_path.parts[-2:]
    video = "-".join(parts[:-1]) or Path(sample.root).name or "images"
    return "labeled-data", video, parts[-1]


def _individuals(records: list[tuple[Sample, Label]], cfg: dict[str, Any] | None
                 ) -> tuple[list[str], list[str | None]]:
    """The individuals' names and each record's (None for single-animal data)."""
    per_image: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for n, (s, _) in enumerate(records):
        per_image[dlc_path(s)].append(n)
    if all(len(v) == 1 for v in per_image.values()) and not (cfg or {}).get("multianimalproject"):
        return [], [None] * len(records)
    named = {str(i) for i in (cfg or {}).get("individuals") or [] if isinstance(i, str | int)}
    names: list[str | None] = [None] * len(records)
    for ns in per_image.values():
        suffixes = [records[n][0].key.rpartition("#")[2] for n in ns]
        use = named and all(s in named for s in suffixes) and len(set(suffixes)) == len(ns)
        for pos, n in enumerate(ns):
            names[n] = suffixes[pos] if use else f"individual{pos + 1}"
    order = [str(i) for i in (cfg or {}).get("individuals") or [] if isinstance(i, str | int)]
    order += sorted({n for n in names if n is not None} - set(order),
                    key=lambda s: (len(s), s))
    used = {n for n in names if n is not None}
    return [n for n in order if n in used], names


def frame(records: list[tuple[Sample, Label]], schema: LabelSchema, scorer: str,
          individuals: list[str], names: list[str | None]) -> Any:
    """The DataFrame DeepLabCut keeps: MultiIndex columns (scorer, [individuals,]
    bodyparts, coords), an index of image paths ``labeled-data/video/img.png``."""
    import pandas as pd

    k = schema.n_keypoints
    paths = list(dict.fromkeys("/".join(dlc_path(s)) for s, _ in records))
    row_of = {p: i for i, p in enumerate(paths)}
    slots = max(1, len(individuals))
    data = np.full((len(paths), slots * k * 2), np.nan)
    for (s, label), ind in zip(records, names, strict=True):
        pts = np.asarray(label.points, dtype=np.float64).reshape(k, 2)
        if label.visibility is not None:
            pts = np.where(np.asarray(label.visibility)[:, None] > 0, pts, np.nan)
        j = 0 if ind is None else individuals.index(ind) * k * 2
        data[row_of["/".join(dlc_path(s))], j:j + 2 * k] = pts.reshape(-1)
    if individuals:
        columns = pd.MultiIndex.from_product(
            [[scorer], individuals, list(schema.keypoints), ["x", "y"]],
            names=["scorer", "individuals", "bodyparts", "coords"])
    else:
        columns = pd.MultiIndex.from_product([[scorer], list(schema.keypoints), ["x", "y"]],
                                             names=["scorer", "bodyparts", "coords"])
    return pd.DataFrame(data, index=pd.Index(paths, dtype=object), columns=columns)


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


def _config_out(cfg: dict[str, Any] | None, schema: LabelSchema, scorer: str, out: Path,
                individuals: list[str]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Task": schema.name or "gumshoe", "scorer": scorer,
        "date": datetime.date.today().strftime("%b%d"), "multianimalproject": False,
        "identity": None, "project_path": str(out.resolve()), "video_sets": {},
        "bodyparts": [], "start": 0, "stop": 1, "numframes2pick": 20, "skeleton": [],
        "skeleton_color": "black", "pcutoff": 0.6, "dotsize": 12, "alphavalue": 0.7,
        "colormap": "rainbow", "TrainingFraction": [0.95], "iteration": 0,
        "default_net_type": "resnet_50", "snapshotindex": -1, "batch_size": 8,
        "cropping": False, "x1": 0, "x2": 640, "y1": 277, "y2": 624,
        "corner2move2": [50, 50], "move2corner": True,
    }
    cfg = {**base, **(cfg or {})}
    cfg["scorer"] = scorer
    cfg["project_path"] = str(out.resolve())
    names = list(schema.keypoints)
    cfg["skeleton"] = [[names[a], names[b]] for a, b in schema.skeleton]
    if individuals:
        cfg.update(multianimalproject=True, individuals=individuals,
                   multianimalbodyparts=names, bodyparts="MULTI!")
        cfg.setdefault("uniquebodyparts", [])
    else:
        cfg["bodyparts"] = names
    return cfg


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int:
    """See the module docstring. Samples sharing an image become individuals of a
    multi-animal table (named as in the source project, else ``individual1``...)."""
    import yaml

    if schema.task != "landmarks":
        raise ValueError(f"the DeepLabCut format holds landmarks, not {schema.task}")
    out = Path(out)
    records = list(records)
    cfg = _source_config(records[0][0]) if records else None
    scorer = _source_scorer(records[0][0], cfg) if records else DEFAULT_SCORER
    if not re.fullmatch(r"[^/\\\x00]+", scorer):
        scorer = DEFAULT_SCORER
    individuals, names = _individuals(records, cfg)
    if out.suffix.lower() in (".h5", ".csv"):
        twins = [out.with_suffix(".h5"), out.with_suffix(".csv")]
        for p in twins:
            if p != out and p.exists():
                raise FileExistsError(f"{p}: exists (a DeepLabCut export writes {out.name} "
                                      f"and {p.name})")
        out.parent.mkdir(parents=True, exist_ok=True)
        df = frame(records, schema, scorer, individuals, names)
        for p in twins:
            write_table(df, p)
        return len(records)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder (a DeepLabCut "
                              "export makes a new project folder)")
    by_video: dict[str, list[int]] = defaultdict(list)
    for n, (s, _) in enumerate(records):
        by_video[dlc_path(s)[1]].append(n)
    out.mkdir(parents=True, exist_ok=True)
    for video, ns in by_video.items():
        folder = out / "labeled-data" / video
        folder.mkdir(parents=True, exist_ok=True)
        for n in ns:
            s = records[n][0]
            target = folder / dlc_path(s)[2]
            if not target.exists():
                shutil.copy2(s.image_path, target)
        part = [records[n] for n in ns]
        df = frame(part, schema, scorer, individuals, [names[n] for n in ns])
        for suffix in (".h5", ".csv"):
            write_table(df, folder / f"{PREFIX}{scorer}{suffix}")
    config = _config_out(cfg, schema, scorer, out, individuals)
    (out / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    return len(records)
