"""Import a dataset source into a project: idempotent and crash-safe.

Each image is read and decoded once (validating it and filling the image
cache at the same time), in a small thread pool since OpenCV releases the GIL.
Samples are committed in batches, each batch one transaction holding whole
samples with their first label, so a kill at any moment leaves a file that
opens and holds only whole samples; running the same import again skips the
keys already stored and completes it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.formats import default_task, detect_format, get_reader
from core.formats.base import RawItem, Skip
from core.images import ImageCache, ImageError, Letterbox, letterbox, letterbox_for, load_image
from core.project import LabelSchema, NewSample, Project, ProjectError
from core.schemas import schema_conflict

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
    schema: LabelSchema | None = None  # the project's, after this import
    new_schema: bool = False  # this import set it

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
) -> ImportResult:
    """Import ``source`` into ``project``; see the module docstring for the guarantees."""
    t0 = time.perf_counter()
    source = Path(source)
    if fmt == "auto":
        fmt = detect_format(source)
    reader = get_reader(fmt)
    task = task or default_task(reader, source)
    if task not in reader.tasks:
        raise ValueError(f"{source}: format {fmt!r} has no task {task!r} (has {', '.join(reader.tasks)})")
    schema = reader.schema(source, task)
    current = project.schema
    if current is None:
        project.set_schema(schema)
    elif (conflict := schema_conflict(current, schema)) is not None:
        raise ProjectError(f"cannot import {source} into {project.path}: {conflict}")
    else:
        schema = current  # same keypoints: the project keeps its skeleton and flip pairs
    # readers that decode frames out of a video or label file (slp) write them here
    frames = {"frames_dir": project.cache_dir / "frames"} if getattr(
        reader, "writes_frames", False) else {}
    root = reader.root(source, **frames).resolve()
    source_id = project.add_source(root, fmt, task, {"source": str(source.resolve())})
    known = project.existing_keys(source_id)
    size = image_size or int(project.meta("image_size") or DEFAULT_IMAGE_SIZE)
    cache = ImageCache(project.cache_dir, size)
    result = ImportResult(source_id, fmt, task, schema=schema, new_schema=current is None)

    def decode(item: RawItem) -> tuple[RawItem, object]:
        """In a worker thread: read, hash, decode and letterbox one image."""
        try:
            image, digest = load_image(item.image)
        except ImageError as exc:
            return item, exc
        h, w = image.shape[:2]
        item = item.scaled(w, h)  # YOLO's fractions of the image size -> pixels
        lb = letterbox_for(w, h, item.box, size)
        return item, (w, h, digest, letterbox(image, lb), lb)

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
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for item, outcome in _ordered(pool, decode, _items(reader.read(source, task, **frames), known, schema,
                                                            result), 4 * max(1, workers)):
            handled += 1
            if isinstance(outcome, Exception):
                result.skipped.append(Skip(_rel(item.image, root), str(outcome).split(": ", 1)[-1]))
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

    project.record_skips(source_id, [(s.path, s.reason) for s in result.skipped])
    if not result.stopped:
        project.complete_source(source_id)
        if noise:
            from core.noise import apply_noise

            ids = [s.id for s in project.samples() if s.source_id == source_id]
            apply_noise(project, noise, seed, ids)
            result.noise = noise
    result.seconds = time.perf_counter() - t0
    return result


def _rel(path: Path, root: Path) -> str:
    """Path relative to the source root (forward slashes), or absolute if outside it."""
    p = path.resolve()
    return p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)


def _items(stream: Iterator[RawItem | Skip], known: set[str], schema: LabelSchema,
           result: ImportResult) -> Iterator[RawItem]:
    """Reader items to decode: skips and bad labels are recorded, known keys counted."""
    for item in stream:
        if isinstance(item, Skip):
            result.skipped.append(item)
            continue
        if item.key in known:
            result.existing += 1
            continue
        reason = check_label(item, schema)
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
