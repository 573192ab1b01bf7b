"""Import a dataset source into a project: idempotent, crash-safe, and never stopped
by one bad item.

Each image is read and decoded once (validating it and filling the image
cache at the same time), in a small thread pool since OpenCV releases the GIL.
Samples are committed in batches, each batch one transaction holding whole
samples with their first label, so a kill at any moment leaves a file that
opens and holds only whole samples; running the same import again skips the
keys already stored and completes it (caching the images of stored samples whose
cache rows the kill prevented).

Every per-item failure (a broken label, a box that gives no crop, an image that
is unreadable, too large, not a regular file, or outside the source folder, a
file name that is not UTF-8) becomes one :class:`~core.formats.base.Skip`; only
a failure of the source as a whole (its index file unreadable) stops the import,
as one :class:`~core.formats.base.FormatError`. Image paths must stay inside the
source root (resolved, symlinks followed) unless ``allow_outside_root``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.formats import detect_format, get_reader
from core.formats.base import FormatError, RawItem, Skip
from core.images import (
    ImageCache,
    ImageError,
    Letterbox,
    box_problem,
    check_image_size,
    content_hash,
    crop_for,
    decode_image,
    read_file,
)
from core.paths import UnsafePathError, is_valid_utf8, one_line, resolve_inside, shown, storable
from core.project import LabelSchema, NewSample, Project

DEFAULT_IMAGE_SIZE = 64
VAL_SHARE = 0.1
BATCH = 64

Progress = Callable[[int, str], None]  # (items handled so far, last item) - throttled by caller


@dataclass
class ImportResult:
    source_id: int
    format: str
    task: str
    added: int = 0
    existing: int = 0
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False
    noise: str | None = None

    @property
    def images_per_s(self) -> float:
        return (self.added + self.existing) / self.seconds if self.seconds > 0 else 0.0


def split_for(key: str, val_share: float = VAL_SHARE) -> str:
    """Deterministic train/val assignment from the sample key (stable across re-imports)."""
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return "val" if (h % 10_000) < val_share * 10_000 else "train"


def check_label(item: RawItem, schema: LabelSchema) -> str | None:
    """The reason a reader's label cannot be stored, or None."""
    if schema.task == "age":
        if item.age is None or not np.isfinite(item.age):
            return "no finite age"
        if not 0 <= item.age <= 150:
            return f"age {item.age:g} out of range 0-150"
        return None
    if item.points is None:
        return "no landmarks"
    pts = np.asarray(item.points, dtype=np.float64)
    if pts.shape != (schema.n_keypoints, 2):
        return f"{schema.n_keypoints} points expected, found {pts.reshape(-1, 2).shape[0]}"
    vis = item.visibility
    present = np.isfinite(pts).all(axis=1) if vis is None else np.asarray(vis) > 0
    if not np.isfinite(pts[present]).all():
        return "non-finite coordinate on a labelled point"
    if np.abs(pts[present]).max(initial=0) > 1e6:
        return "coordinate out of any plausible image"
    if not present.any():
        return "no labelled point"
    return None


def import_source(
    project: Project,
    source: str | Path,
    fmt: str = "auto",
    task: str | None = None,
    *,
    noise: str | None = None,
    seed: int = 0,
    image_size: int | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 2,
    allow_outside_root: bool = False,
) -> ImportResult:
    """Import ``source`` into ``project``; see the module docstring for the guarantees.
    ``allow_outside_root``: accept image paths that lead outside the source root
    (absolute, through ``..`` or a symlink); they are stored absolute."""
    t0 = time.perf_counter()
    source = Path(source)
    size = check_image_size(image_size or int(project.meta("image_size") or DEFAULT_IMAGE_SIZE))
    if fmt == "auto":
        fmt = detect_format(source)
    reader = get_reader(fmt)
    task = task or reader.tasks[0]
    if task not in reader.tasks:
        raise ValueError(f"{source}: format {fmt!r} has no task {task!r} (has {', '.join(reader.tasks)})")
    schema = _whole_source(source, lambda: reader.schema(source, task))
    project.set_schema(schema)
    root = _whole_source(source, lambda: reader.root(source)).resolve()
    options = {"source": storable(str(source.resolve()))}
    if allow_outside_root:
        options["allow_outside_root"] = True
    source_id = project.add_source(root, fmt, task, options)
    known = project.existing_keys(source_id)
    cache = ImageCache(project.cache_dir, size)
    result = ImportResult(source_id, fmt, task)

    def decode(item: RawItem) -> tuple[RawItem, object]:
        """In a worker thread: read, hash, decode and letterbox one image. Never raises:
        any failure comes back as the ImageError that names it."""
        try:
            data = read_file(item.image)
            image = decode_image(data, item.image)[0]
            h, w = image.shape[:2]
            crop, lb = crop_for(image, w, h, item.box, size, item.image)
            return item, (w, h, content_hash(data), crop, lb)
        except ImageError as exc:
            return item, exc
        except MemoryError:
            return item, ImageError(f"{shown(item.image)}: out of memory reading the image")
        except Exception as exc:  # noqa: BLE001 - one bad item never aborts the import
            return item, ImageError(f"{shown(item.image)}: {type(exc).__name__}: {exc}")

    pending: list[tuple[NewSample, np.ndarray, Letterbox, Path]] = []

    def flush() -> None:
        if not pending:
            return
        added = project.add_samples(source_id, [s for s, *_ in pending])
        ids = project.sample_ids_by_key(source_id, [s.key for s, *_ in pending])
        for s, crop, lb, path in pending:
            cache.put(ids[s.key], s.content_hash, crop, lb, path=path)
        cache.flush()
        result.added += len(added)
        pending.clear()

    handled = 0
    items = _items(_guarded(reader.read(source, task), source), known, schema, result, root,
                   allow_outside_root)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for item, outcome in _ordered(pool, decode, items, 4 * max(1, workers)):
            handled += 1
            if isinstance(outcome, ImageError):
                reason = str(outcome).removeprefix(f"{shown(item.image)}: ")
                result.skipped.append(Skip(_rel(item.image, root), reason))
            else:
                w, h, digest, crop, lb = outcome  # type: ignore[misc]
                pending.append((NewSample(
                    key=item.key, path=_rel(item.image, root), width=w, height=h,
                    content_hash=digest, points=item.points, visibility=item.visibility,
                    age=item.age, box=item.box, split=split_for(item.key)), crop, lb, item.image))
                if len(pending) >= BATCH:
                    flush()
            if progress is not None:
                progress(handled, item.key)
            if should_stop is not None and should_stop():
                result.stopped = True
                break
        flush()

    project.record_skips(source_id, [(storable(s.path), storable(s.reason))
                                     for s in result.skipped])
    if not result.stopped:
        # samples stored by an import killed before their cache rows were written
        uncached = [s for s in project.samples() if s.source_id == source_id and s.id not in cache]
        if uncached:
            cache.ensure(uncached, should_stop=should_stop, workers=workers)
        project.complete_source(source_id)
        if noise:
            from core.noise import apply_noise

            ids = [s.id for s in project.samples() if s.source_id == source_id]
            apply_noise(project, noise, seed, ids)
            result.noise = noise
    result.seconds = time.perf_counter() - t0
    return result


def _whole_source(source: Path, fn: Callable[[], object]) -> object:
    """``fn()``, with any failure other than FormatError turned into one FormatError
    naming the source (a hostile index file must not end in a traceback)."""
    try:
        return fn()
    except FormatError:
        raise
    except MemoryError:
        raise FormatError(f"{shown(source)}: out of memory reading it") from None
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            RecursionError, UnicodeError) as exc:
        raise FormatError(f"{shown(source)}: cannot read ({type(exc).__name__}: "
                          f"{one_line(str(exc))})") from None


def _guarded(stream: Iterator[RawItem | Skip], source: Path) -> Iterator[RawItem | Skip]:
    """A reader's items, a failure of the reader itself raised as one FormatError."""
    while True:
        item = _whole_source(source, lambda: next(stream, None))
        if item is None:
            return
        yield item  # type: ignore[misc]


def _rel(path: Path, root: Path) -> str:
    """Path relative to the source root (forward slashes), or absolute if outside it."""
    p = path.resolve()
    return p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)


def _items(stream: Iterator[RawItem | Skip], known: set[str], schema: LabelSchema,
           result: ImportResult, root: Path, allow_outside: bool) -> Iterator[RawItem]:
    """Reader items to decode: skips and bad labels are recorded, known keys counted."""
    for item in stream:
        if isinstance(item, Skip):
            result.skipped.append(item)
            continue
        if not (is_valid_utf8(item.key) and is_valid_utf8(str(item.image))):
            result.skipped.append(Skip(item.key, "file name is not valid UTF-8 (rename it)"))
            continue
        if item.key in known:
            result.existing += 1
            continue
        reason = check_label(item, schema) or box_problem(item.box)
        if reason is None:
            try:
                resolve_inside(root, os.path.relpath(item.image, root),
                               allow_outside=allow_outside)
            except UnsafePathError as exc:
                reason = str(exc)
        if reason is not None:
            result.skipped.append(Skip(item.key, reason))
            continue
        known.add(item.key)  # a source listing a key twice imports it once
        yield item


def _ordered(pool: ThreadPoolExecutor, fn: Callable[[RawItem], tuple[RawItem, object]],
             items: Iterator[RawItem], window: int) -> Iterator[tuple[RawItem, object]]:
    """pool.map with bounded look-ahead, keeping input order."""
    queue: list[Future[tuple[RawItem, object]]] = []
    for item in items:
        queue.append(pool.submit(fn, item))
        if len(queue) >= window:
            yield queue.pop(0).result()
    for fut in queue:
        yield fut.result()
