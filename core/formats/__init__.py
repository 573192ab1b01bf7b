"""Dataset formats: a reader per published layout and a writer per export format.

Readers (see :mod:`core.formats.base` for the contract) are instances in
``READERS``, keyed by their ``--format`` name. Writers share one signature::

    write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int

``out`` is the file or new folder to create (``EXPORT_SUFFIX`` says which: a file
suffix, or ``""`` for a folder; dlc and cvat also write a lone table/XML when given
a ``.h5``/``.csv``/``.xml`` name); ``records`` are the samples with the label to write;
the return value is how many were written. A writer raises ValueError for a task its
format cannot hold (ages in COCO or .pts) and FileExistsError rather than write into
a folder in use. Image paths are written relative to the output's folder (csv, coco,
cvat's XML), referenced (slp) or the images are copied (pts, dlc, yolo-pose and cvat
folders), so reading the output back gives the same labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from core.formats import coco, csv_format, cvat, dlc, pts, slp, yolo_pose
from core.formats.base import FormatError, RawItem, Reader, Skip
from core.formats.coco import CocoReader
from core.formats.csv_format import CsvReader
from core.formats.cvat import CvatReader
from core.formats.dlc import DlcReader
from core.formats.dlib_xml import DlibReader
from core.formats.fgnet import FgnetReader
from core.formats.labelstudio import LabelStudioReader
from core.formats.ljson import LjsonReader, PtsLjsonReader
from core.formats.lsp import LspReader
from core.formats.slp import SlpReader
from core.formats.utkface import UtkfaceReader
from core.formats.yolo_pose import YoloPoseReader
from core.project import Label, LabelSchema, Sample

Writer = Callable[[Path, LabelSchema, Iterable[tuple[Sample, Label]]], int]

# In the order detect_format tries them: the most specific layouts first.
READERS: dict[str, Reader] = {r.name: r for r in (
    SlpReader(), DlcReader(), YoloPoseReader(), CvatReader(), FgnetReader(), LspReader(), DlibReader(),
    LabelStudioReader(), CocoReader(), CsvReader(), UtkfaceReader(), LjsonReader(),
    PtsLjsonReader(),
)}

WRITERS: dict[str, Writer] = {"csv": csv_format.write, "coco": coco.write, "pts": pts.write,
                              "dlc": dlc.write, "yolo-pose": yolo_pose.write, "cvat": cvat.write,
                              "slp": slp.write}

# What a writer's ``out`` is by default: a file with this suffix, or "" for a new folder.
EXPORT_SUFFIX: dict[str, str] = {"csv": ".csv", "coco": ".json", "pts": "", "dlc": "",
                                 "yolo-pose": "", "cvat": "", "slp": ".slp"}
# Writers that write one file when ``out`` has one of these suffixes, else a folder.
FILE_SUFFIXES: dict[str, tuple[str, ...]] = {"csv": ("",), "coco": ("",), "slp": ("",),
                                             "dlc": (".h5", ".csv"), "cvat": (".xml",)}
# What a folder export holds besides images (so a new export may replace an old one of
# the same format, and nothing else), and whether it has subfolders.
FOLDER_FILES: dict[str, tuple[tuple[str, ...], bool]] = {
    "pts": ((".pts",), False), "dlc": ((".yaml", ".h5", ".csv"), True),
    "yolo-pose": ((".yaml", ".txt"), True), "cvat": ((".xml",), True)}

# writers that also take the samples as column chunks (core.store.label_table), for speed
TABLE_WRITERS = {"csv": csv_format.write_tables}

__all__ = ["EXPORT_SUFFIX", "FOLDER_FILES", "READERS", "TABLE_WRITERS", "WRITERS", "FormatError", "RawItem",
           "Reader", "Skip", "Writer", "default_task", "detect_format", "export_layout",
           "get_reader", "get_writer", "write"]


def get_reader(name: str) -> Reader:
    try:
        return READERS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r} (known: {', '.join(READERS)})") from None


def get_writer(name: str) -> Writer:
    try:
        return WRITERS[name]
    except KeyError:
        raise ValueError(f"cannot write {name!r} (writers: {', '.join(WRITERS)})") from None


def detect_format(source: str | Path) -> str:
    """The name of the first reader whose ``sniff`` accepts ``source``."""
    source = Path(source)
    if not source.exists():
        raise FormatError(f"{source}: no such file or folder")
    for name, reader in READERS.items():
        if reader.sniff(source):
            return name
    raise FormatError(f"{source}: cannot tell the dataset format; name one of "
                      f"{', '.join(READERS)}")


def default_task(reader: Reader, source: str | Path) -> str:
    """The task to import when none is named: the reader's choice for this source where
    it can tell (a CSV's header says landmarks or age), else its first task."""
    pick = getattr(reader, "default_task", None)
    return pick(Path(source)) if pick is not None else reader.tasks[0]


def export_layout(name: str, out: str | Path) -> tuple[bool, list[Path]]:
    """What writer ``name`` makes of ``out``: (a folder holding copies of the images, the
    other files it writes beside ``out``). A DeepLabCut ``clean.h5`` also writes its twin
    ``clean.csv``; a ``dlc`` or ``cvat`` name without a table/XML suffix is a folder."""
    get_writer(name)
    out = Path(out)
    suffixes = FILE_SUFFIXES.get(name)
    if suffixes is None or ("" not in suffixes and out.suffix.lower() not in suffixes):
        return True, []
    if name == "dlc":
        return False, [out.with_suffix(s) for s in (".h5", ".csv") if s != out.suffix.lower()]
    return False, []


def write(name: str, out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]],
          *, final: Path | None = None) -> int:
    """Writer ``name`` on ``out``; ``final``: the name ``out`` is renamed to once written
    (an export is staged under a temporary name), for a format that records its own
    place (a DeepLabCut config's ``project_path``)."""
    if name == "dlc":
        return dlc.write(out, schema, records, final=final)
    return get_writer(name)(out, schema, records)
