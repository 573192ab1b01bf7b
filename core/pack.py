"""A run away from the project file: ``gumshoe pack`` and ``gumshoe import-run``.

SQLite must never be shared over a network file system (its locks do not hold
there), so a GPU box or a cluster trains on a copy and the run comes back.

**Pack** (:func:`pack_project`): a folder holding the project file, copied with
SQLite's online backup API (a consistent snapshot, even while annotators keep
working), and its image cache at the sizes the remote will train at. That is
all a trainer reads: the cache holds every sample's decoded, letterboxed pixels,
so the dataset's images do not travel (their paths stay those of the
annotators' machine, and a packed project trusts its cache wherever a row's
content hash is the sample's: :func:`core.training.data.load_data`). The copy
is a normal project: ``gumshoe train`` and ``torchrun ... -m core train`` run on
it, ``gumshoe info`` and the GUI read its runs while it trains. Its meta
``pack`` row names the project it came from (a ``project_id`` the original
gets at its first pack), this pack, and the last run that existed when it was
made.

**Import** (:func:`import_runs`): the runs trained in a pack after it was made,
with their epochs and scores, copied into the annotators' project as new runs.
Samples are matched by source (root, format, task) and key, never by id; a pack
of another project is refused; importing again updates the same runs (a run
imported while it was still training gets its later epochs and scores), so it
is idempotent. Labels edited in the project since the pack was made are
counted: those samples' scores judge the label as it was packed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.project import SUFFIX, Project, ProjectError, Run, now_iso

if TYPE_CHECKING:
    from core.training.recorder import Recorder

PACK_META = "pack"
PROJECT_ID_META = "project_id"
Log = Callable[[str], None]


@dataclass(frozen=True)
class PackInfo:
    """What a pack is (its ``pack`` meta row)."""

    pack_id: str
    project_id: str
    origin: str  # the packed project's path on the machine that packed it
    packed_at: str
    last_run: int  # runs after this one were trained in the pack
    image_sizes: tuple[int, ...]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str, where: Path) -> PackInfo:
        try:
            d = json.loads(text)
            return cls(str(d["pack_id"]), str(d["project_id"]), str(d["origin"]),
                       str(d["packed_at"]), int(d["last_run"]),
                       tuple(int(s) for s in d["image_sizes"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProjectError(f"{where}: its pack record is damaged ({exc})") from None


def pack_info(project: Project) -> PackInfo | None:
    """The pack record of a packed project (None for an ordinary project)."""
    text = project.meta(PACK_META)
    return None if text is None else PackInfo.from_json(text, project.path)


def project_id(project: Project) -> str:
    """The project's identity (made at its first pack; a copy keeps it)."""
    pid = project.meta(PROJECT_ID_META)
    if pid is None:
        pid = uuid.uuid4().hex
        project.set_meta(PROJECT_ID_META, pid)
    return pid


def cached_sizes(project: Project) -> list[int]:
    """The image sizes the project's cache holds."""
    sizes = []
    for p in project.cache_dir.glob("images-*.json"):
        with contextlib.suppress(ValueError):
            sizes.append(int(p.stem.split("-", 1)[1]))
    return sorted(sizes)


def find_project_file(path: str | os.PathLike[str]) -> Path:
    """A project file, or the one project file in a folder (a pack)."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob(f"*{SUFFIX}"))
        if len(found) != 1:
            raise ProjectError(f"{p}: expected one {SUFFIX} file in the folder, found "
                               f"{len(found)}")
        return found[0]
    if not p.exists():
        raise ProjectError(f"{p}: no such project file or pack")
    return p


def pack_project(path: str | os.PathLike[str], out: str | os.PathLike[str],
                 image_sizes: Iterable[int] | None = None, log: Log | None = None) -> Path:
    """Pack the project at ``path`` into the new folder ``out`` (see the module
    docstring); returns the packed project file. ``image_sizes``: the cache sizes
    to take (built first where missing; default: those cached, else 64)."""
    from core.images import ImageCache  # OpenCV: not for `gumshoe info`

    say = log or (lambda _line: None)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ProjectError(f"{out}: already exists; pack into a new folder")
    with Project.open(path) as project:
        if pack_info(project) is not None:
            raise ProjectError(f"{project.path}: is itself a pack; pack the annotators' project")
        if project.schema is None:
            raise ProjectError(f"{project.path}: the project has no labels to train on")
        sizes = sorted(set(image_sizes or cached_sizes(project) or [64]))
        samples = project.samples()
        for size in sizes:
            cache = ImageCache(project.cache_dir, size)
            errors = cache.ensure(samples)
            say(f"image cache {size} px: {len(samples) - len(errors)} images"
                + (f" ({len(errors)} unreadable, left out)" if errors else ""))
        info = PackInfo(uuid.uuid4().hex, project_id(project), str(project.path.resolve()),
                        now_iso(), max((r.id for r in project.runs()), default=0),
                        tuple(sizes))
        out.mkdir(parents=True, exist_ok=True)
        dest = out / project.path.name
        try:
            # SQLite's online backup (annotators keep working), without the lease: the
            # copy trains on its own, not under a lease a trainer here holds
            project.backup(dest)
            with Project.open(dest) as packed:
                packed.set_meta(PACK_META, info.to_json())
                packed_cache = packed.cache_dir
            packed_cache.mkdir(exist_ok=True)
            for size in sizes:
                cache = ImageCache(project.cache_dir, size)
                # the index first: the data file only grows, so it holds every row the
                # copied index points at
                shutil.copy2(cache.index_path, packed_cache / cache.index_path.name)
                shutil.copy2(cache.data_path, packed_cache / cache.data_path.name)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    say(f"packed {len(samples)} samples into {out} ({size_mb:.0f} MB)")
    return dest


# --------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    """What :func:`import_runs` did."""

    runs: list[tuple[int, int, bool]] = field(default_factory=list)  # (pack run, here, new)
    scores: int = 0
    unmatched: int = 0  # scored samples of the pack with no sample here
    edited: int = 0  # samples whose label changed here since the pack was made


def _source_keys(project: Project) -> dict[int, tuple[str, str, str]]:
    return {s.id: (s.root, s.format, s.task) for s in project.sources()}


def _sample_map(pack: Project, project: Project) -> dict[int, int]:
    """Pack sample id -> this project's sample id, by source and key."""
    here_src = _source_keys(project)
    here = {(here_src[s.source_id], s.key): s.id for s in project.samples()}
    their_src = _source_keys(pack)
    out = {}
    for s in pack.samples():
        sid = here.get((their_src[s.source_id], s.key))
        if sid is not None:
            out[s.id] = sid
    return out


def _edited(pack: Project, project: Project, mapping: dict[int, int]) -> int:
    """How many mapped samples' current labels differ between the pack and here."""
    theirs = pack.current_labels(list(mapping))
    mine = project.current_labels(list(mapping.values()))
    n = 0
    for a, b in mapping.items():
        la, lb = theirs.get(a), mine.get(b)
        if la is None or lb is None:
            n += la is not lb
            continue
        same = np.array_equal(la.targets, lb.targets, equal_nan=True)
        n += not same
    return n


def _origin(run: Run) -> tuple[str, int] | None:
    o = run.params.get("origin") if isinstance(run.params, dict) else None
    if not isinstance(o, dict) or "pack_id" not in o or "run" not in o:
        return None
    return str(o["pack_id"]), int(o["run"])


def import_runs(path: str | os.PathLike[str], bundle: str | os.PathLike[str],
                run: int | None = None) -> ImportResult:
    """Bring the runs trained in the pack ``bundle`` (a pack folder or its project
    file) into the project at ``path`` (see the module docstring). ``run``: that
    run of the pack only. The project's training lease is held while the runs are
    written (a trainer working on the project refuses it: :class:`LeaseHeldError`),
    and every write goes through the run's :class:`ProjectRecorder`, scores as one
    score set published at once."""
    from core.training.recorder import ProjectRecorder  # torch: not for `gumshoe info`

    bundle_file = find_project_file(bundle)
    result = ImportResult()
    with Project.open(path) as project, Project.open(bundle_file) as pack:
        if project.path.resolve() == pack.path.resolve():
            raise ProjectError(f"{bundle_file}: is the project itself")
        info = pack_info(pack)
        if info is None:
            raise ProjectError(f"{bundle_file}: not a pack (made by `gumshoe pack`); "
                               "nothing to import")
        if project.meta(PROJECT_ID_META) != info.project_id:
            raise ProjectError(f"{bundle_file}: a pack of another project ({info.origin}), "
                               f"not of {project.path}")
        runs = [r for r in pack.runs() if r.id > info.last_run]
        if run is not None:
            runs = [r for r in pack.runs() if r.id == run]
            if not runs:
                raise ProjectError(f"{bundle_file}: no run {run}")
        mapping = _sample_map(pack, project)
        result.edited = _edited(pack, project, mapping)
        with project.acquire_lease(None, "cli") as lease:
            existing = {o: r.id for r in project.runs() if (o := _origin(r)) is not None}
            for r in runs:
                key = (info.pack_id, r.id)
                origin = {"pack_id": info.pack_id, "run": r.id,
                          "pack_path": str(bundle_file.resolve()), "host": r.host,
                          "started_at": r.started_at, "imported_at": now_iso()}
                params = {**r.params, "origin": origin}
                here = existing.get(key)
                new = here is None
                if here is None:
                    here = project.create_run(r.method, params, device=r.device)
                lease.set_run(here)
                _import_run(ProjectRecorder(project, here), pack, bundle_file, r, params,
                            mapping, result)
                result.runs.append((r.id, here, new))
    return result


def _import_run(recorder: Recorder, pack: Project, bundle: Path, r: Run,
                params: dict[str, Any], mapping: dict[int, int], result: ImportResult) -> None:
    message = f"imported from {bundle} (run {r.id} there, {r.status})"
    if r.message:
        message += f": {r.message}"
    for e in pack.epochs(r.id):
        recorder.epoch(e.epoch, train_loss=e.train_loss, val_error=e.val_error,
                       inlier_fraction=e.inlier_fraction, images_per_s=e.images_per_s,
                       seconds=e.seconds, metrics=e.metrics)
    rows = []
    for sid, s in pack.scores(r.id).items():
        target = mapping.get(sid)
        if target is None:
            result.unmatched += 1
            continue
        rows.append(dataclasses.replace(s, sample_id=target))
    if rows:
        recorder.scores(rows)
    result.scores += len(rows)
    # last, so a run that reads 'finished' here has its epochs and scores: where it
    # trained (the GUI says "started by pid P on HOST"), no checkpoint here
    recorder.status(r.status, message, state=r.state, params=params,
                    finished_at=r.finished_at, pid=r.pid, host=r.host, checkpoint=None)


# --------------------------------------------------------------------------- progress


def describe_runs(project: Project, last: int = 5) -> list[str]:
    """One line per run (the ``last`` most recent): status, epochs done, the latest
    validation error and speed, and when it last wrote (to follow a remote run)."""
    lines = []
    for r in project.runs()[-last:]:
        cfg = r.params.get("config", {}) if isinstance(r.params, dict) else {}
        folds = int(cfg.get("folds", 1) or 1)
        total = r.epochs_planned * (folds + 1 if folds > 1 else 1)
        epochs = project.epochs(r.id)
        line = f"run {r.id:<3d} {r.method:<14s} {r.status:<8s}"
        line += f" epoch {len(epochs)}/{total}" if total else f" {len(epochs)} epochs"
        if epochs:
            e = epochs[-1]
            if e.val_error is not None:
                line += f"  val {e.val_error:.4f}"
            if e.images_per_s:
                line += f"  {e.images_per_s:.0f} img/s"
        line += f"  updated {r.updated_at}"
        if r.params.get("origin"):
            line += "  (imported)"
        lines.append(line)
    return lines
