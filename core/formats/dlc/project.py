"""A DeepLabCut project: its config.yaml and where its CollectedData tables are."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.formats.base import FormatError, Skip
from core.formats.common import rel_key
from core.formats.dlc.tables import Table, parse_csv, parse_h5
from core.formats.guard import SMALL_FILE_LIMIT, read_text

CONFIG = "config.yaml"
PREFIX = "CollectedData_"
SINGLE = "single"  # DeepLabCut's individual for unique bodyparts


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


# ----------------------------------------------------------------------------- layout


def is_collected(path: Path) -> bool:
    return path.name.startswith(PREFIX) and path.suffix.lower() in (".csv", ".h5")


def looks_like_table_csv(path: Path) -> bool:
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


def read_tables(source: Path, scorer: str | None) -> Iterator[Table | Skip]:
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


def header_bodyparts(source: Path) -> list[str]:
    for t in read_tables(source, None):
        if isinstance(t, Table):
            names = [bp for ind, bp, c in t.columns if c == "x" and ind != SINGLE]
            return list(dict.fromkeys(names))
    raise FormatError(f"{source}: no readable {PREFIX}*.csv or .h5")


