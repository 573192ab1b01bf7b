"""Where an export may write, and how it appears there: never over the project, only
over an existing file or folder when asked, and never half-written.

:func:`check_target` refuses, whatever ``overwrite`` says, an output (or a change
report) that is the project file, its ``-wal``/``-shm``/``-journal``, inside its
cache folder, or a folder holding the project, its cache or a source's images; and,
unless ``overwrite``, any existing file or non-empty folder. A folder is replaced
only if it looks like a pts export (image and ``.pts`` files, nothing else).

:class:`Staging` gives each output a temporary name in the same folder
(``.NAME.PID.gumshoe-tmp``); :meth:`Staging.commit` syncs them and renames them
into place, the change report first and the export last, so an export present
under its final name is complete and the report beside it is its own. A kill
leaves only temporary names (removed by the next export to the same place) or, in
the instant between the renames, a report without its export.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from core.formats.common import IMAGE_EXTS
from core.paths import shown

TMP_SUFFIX = ".gumshoe-tmp"
OLD_SUFFIX = ".gumshoe-old"


class ExportTargetError(ValueError):
    """An output that must not be written (one line naming it and why)."""


def _resolved(p: Path) -> Path:
    return Path(os.path.realpath(p))


def project_files(project_path: Path) -> list[Path]:
    """The project file and the files SQLite keeps beside it."""
    p = _resolved(project_path)
    return [p, *(p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal"))]


def check_target(project_path: Path, cache_dir: Path, source_roots: Iterable[str | Path],
                 out: Path, reports: Sequence[Path], *, folder: bool, overwrite: bool,
                 orphan_reports: bool = False) -> list[Path]:
    """Refuse outputs that must not be written (see the module docstring); returns the
    existing ones that will be replaced. ``out`` is the export (a folder when
    ``folder``), ``reports`` its change report files; ``orphan_reports``: existing
    report files are left over from an export that never appeared (see
    :func:`orphan_reports`) and may be replaced without ``overwrite``."""
    protected = project_files(project_path)
    cache = _resolved(cache_dir)
    roots = [_resolved(Path(r)) for r in source_roots]
    replaced = []
    for i, target in enumerate([out, *reports]):
        o = _resolved(target)
        what = "the export" if i == 0 else "its change report"
        if o in protected:
            raise ExportTargetError(f"{shown(target)}: that is the project file (or SQLite's "
                                    f"file beside it); {what} would destroy it. Choose another "
                                    "name")
        if o == cache or o.is_relative_to(cache):
            raise ExportTargetError(f"{shown(target)}: inside the project's cache folder; "
                                    "choose another place")
        if i == 0 and folder:
            if any(p.is_relative_to(o) for p in (*protected, cache)):
                raise ExportTargetError(f"{shown(target)}: this folder holds the project; "
                                        "export to a new folder")
            if any(r.is_relative_to(o) for r in roots):
                raise ExportTargetError(f"{shown(target)}: this folder holds a dataset the "
                                        "project was imported from; export to a new folder")
        if not os.path.lexists(target):
            continue
        if folder and i == 0:
            if not target.is_dir() or target.is_symlink():
                raise ExportTargetError(f"{shown(target)}: exists and is not a folder")
            if not any(target.iterdir()):
                continue  # an empty folder is fine
            if not overwrite:
                raise ExportTargetError(f"{shown(target)}: folder is not empty (use --overwrite "
                                        "to replace a previous export)")
            odd = _not_pts_export(target)
            if odd is not None:
                raise ExportTargetError(f"{shown(target)}: not replaced: it holds "
                                        f"{shown(odd.name)}, which a pts export does not write; "
                                        "remove it yourself")
        else:
            if target.is_dir() and not target.is_symlink():
                raise ExportTargetError(f"{shown(target)}: is a folder")
            if not overwrite and not (i > 0 and orphan_reports):
                raise ExportTargetError(f"{shown(target)}: already exists (use --overwrite to "
                                        "replace it)")
        replaced.append(target)
    return replaced


def orphan_reports(out: Path, reports: Sequence[Path], is_ours: Callable[[Path], bool]) -> bool:
    """True when ``out`` is absent and every existing report file is one of ours
    (``is_ours``): what an export killed between its renames leaves."""
    existing = [r for r in reports if os.path.lexists(r)]
    return bool(existing) and not os.path.lexists(out) and all(is_ours(r) for r in existing)


def _not_pts_export(folder: Path) -> Path | None:
    """The first entry of ``folder`` that a pts export would not have written, or None."""
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or not p.is_file():
            return p
        if p.suffix.lower() not in (*IMAGE_EXTS, ".pts"):
            return p
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def remove_stale(outputs: Sequence[Path]) -> list[Path]:
    """Remove what killed exports to ``outputs`` left: temporary names whose process is
    gone. Returns the removed paths."""
    removed = []
    for out in outputs:
        prefix = f".{out.name}."
        try:
            entries = list(out.parent.iterdir())
        except OSError:
            continue
        for p in entries:
            name = p.name
            if not name.startswith(prefix) or not name.endswith((TMP_SUFFIX, OLD_SUFFIX)):
                continue
            pid = name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                _remove(p)
                removed.append(p)
    return removed


def _fsync(path: Path) -> None:
    """Flush a file, or every file of a folder, and the folder entry, to the disk."""
    paths = [q for q in path.rglob("*") if q.is_file()] if path.is_dir() else [path]
    for q in paths:
        fd = os.open(q, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Staging:
    """Temporary names beside the final outputs (``outputs[0]`` the export, the rest its
    report files); :meth:`commit` moves them into place and removes ``obsolete`` (old
    report files an export without a report must not leave beside it); leaving the
    ``with`` block without a commit removes the temporary names."""

    def __init__(self, outputs: Sequence[Path], obsolete: Sequence[Path] = ()) -> None:
        self.outputs = [Path(p) for p in outputs]
        self.obsolete = [Path(p) for p in obsolete]
        self.temps = [p.with_name(f".{p.name}.{os.getpid()}{TMP_SUFFIX}") for p in self.outputs]
        self.committed = False

    def __enter__(self) -> Staging:
        remove_stale(self.outputs)
        for t in self.temps:
            _remove(t)
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not self.committed:
            self.discard()

    def temp(self, out: Path) -> Path:
        return self.temps[self.outputs.index(Path(out))]

    def discard(self) -> None:
        for t in self.temps:
            _remove(t)

    def commit(self) -> None:
        """Sync the temporary files; move an export being replaced aside (so no export
        ever stands beside a report that is not its own); rename the report files into
        place, then the export; remove what was moved aside."""
        for t in self.temps:
            if os.path.lexists(t):
                _fsync(t)
        out, tmp = self.outputs[0], self.temps[0]
        old = None
        if os.path.lexists(out):
            if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
                out.rmdir()
            else:
                old = out.with_name(f".{out.name}.{os.getpid()}{OLD_SUFFIX}")
                _remove(old)
                os.replace(out, old)
        for p in self.obsolete:
            _remove(p)
        for report, rtmp in zip(self.outputs[1:], self.temps[1:], strict=True):
            os.replace(rtmp, report)
        os.replace(tmp, out)
        _fsync_dir(out.parent)
        self.committed = True
        if old is not None:
            _remove(old)
