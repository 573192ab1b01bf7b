"""COCO keypoints JSON: one sample per annotation, keyed ``file_name#annotation id``.

``keypoints`` is a flat [x, y, v] list with v = 0 (not labelled: missing), 1
(labelled, occluded), 2 (visible); ``bbox`` [x, y, w, h] becomes the box. The
schema comes from the category's keypoint names (a built-in schema when they
match one) and its 1-based skeleton. Image ``file_name`` is looked up beside the
JSON, in ``images/`` there, or in the usual COCO layout (``annotations/x_val2017.json``
with ``val2017/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import number, rel_key
from core.paths import INDEX_FILE_LIMIT, ReadError, is_file, one_line, read_regular, shown
from core.project import Label, LabelSchema, Sample
from core.schemas import schema_for_keypoints

SNIFF_BYTES = 1 << 20


@lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int) -> dict[str, Any]:
    try:
        doc = json.loads(read_regular(path, INDEX_FILE_LIMIT))
    except ReadError as exc:
        raise FormatError(f"{shown(path)}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{shown(path)}: not readable JSON ({one_line(str(exc))[:200]})") from None
    if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise FormatError(f"{path}: not a COCO file (needs lists 'images', 'annotations', "
                          "'categories')")
    return doc


def load(path: Path) -> dict[str, Any]:
    try:
        return _load(str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        raise FormatError(f"{shown(path)}: cannot read ({exc.strerror})") from None


def _category(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    for c in doc["categories"]:
        if isinstance(c, dict) and isinstance(c.get("keypoints"), list) and c["keypoints"]:
            return c
    raise FormatError(f"{path}: no category with keypoints")


def _image_root(path: Path, doc: dict[str, Any]) -> Path:
    here = path.parent
    split = path.stem.rsplit("_", 1)[-1]
    first = next((i.get("file_name") for i in doc["images"] if isinstance(i, dict)), None)
    if isinstance(first, str):
        for cand in (here, here / "images", here.parent / split, here.parent / "images" / split,
                     here.parent / "images", here.parent):
            if is_file(cand / first):
                return cand
    return here


def _is_id(value: Any) -> bool:
    """An id a COCO file may use: a number or a string (not a list, an object, a bool)."""
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _annotation(ann: Any, images: dict[Any, str], cat_id: Any, k: int, root: Path,
                where: str) -> RawItem | Skip:
    """``where`` names the annotation in Skips: ``file.json#annotation N``."""
    if not isinstance(ann, dict):
        return Skip(where, "annotation is not an object")
    image_id = ann.get("image_id")
    file_name = images.get(image_id) if _is_id(image_id) else None
    if file_name is None:
        return Skip(where, f"image_id {repr(ann.get('image_id'))[:60]} is not in 'images'")
    if ann.get("category_id") != cat_id:
        return Skip(where, f"category {repr(ann.get('category_id'))[:60]} has no keypoints")
    if ann.get("iscrowd"):
        return Skip(where, "crowd annotation")
    flat = ann.get("keypoints")
    if not isinstance(flat, list) or len(flat) != 3 * k:
        n = len(flat) if isinstance(flat, list) else 0
        return Skip(where, f"keypoints must list {3 * k} numbers (x, y, v), found {n}")
    try:
        kp = np.array([number(str(v), "keypoints") for v in flat]).reshape(k, 3)
        bbox = ann.get("bbox")
        box = None
        if bbox is not None:
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError("bbox must be [x, y, w, h]")
            x, y, w, h = (number(str(v), "bbox") for v in bbox)
            box = (x, y, x + w, y + h)
    except ValueError as exc:
        return Skip(where, str(exc))
    vis = kp[:, 2].astype(np.int8)
    if not np.isin(vis, (0, 1, 2)).all() or not np.array_equal(vis, kp[:, 2]):
        return Skip(where, "visibility flags must be 0, 1 or 2")
    if not vis.any():
        return Skip(where, "no labelled keypoint")
    image = root / file_name
    if not is_file(image):
        return Skip(where, f"image missing: {file_name}")
    points = np.where(vis[:, None] > 0, kp[:, :2], np.nan)
    return RawItem(f"{file_name}#{ann.get('id')}", image, points, vis, box=box)


class CocoReader:
    name = "coco"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        return _image_root(Path(source), load(Path(source)))

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if not (source.is_file() and source.suffix.lower() == ".json"):
            return False
        with source.open("rb") as f:
            head = f.read(SNIFF_BYTES)
        return b'"annotations"' in head or b'"keypoints"' in head

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: COCO keypoints are landmarks, not {task!r}")
        cat = _category(Path(source), load(Path(source)))
        skeleton = cat.get("skeleton") or []
        try:
            edges = [(int(a) - 1, int(b) - 1) for a, b in skeleton]
        except (TypeError, ValueError):
            raise FormatError(f"{source}: skeleton must be pairs of 1-based indices") from None
        return schema_for_keypoints([str(n) for n in cat["keypoints"]], edges,
                                    name=str(cat.get("name", "")))

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        source = Path(source)
        k = self.schema(source, task).n_keypoints
        doc = load(source)
        cat_id = _category(source, doc).get("id")
        root = _image_root(source, doc)
        images = {i["id"]: i["file_name"] for i in doc["images"]
                  if isinstance(i, dict) and isinstance(i.get("file_name"), str)
                  and _is_id(i.get("id"))}
        for n, ann in enumerate(doc["annotations"]):
            ann_id = ann.get("id", n) if isinstance(ann, dict) else n
            yield _annotation(ann, images, cat_id, k, root, f"{source.name}#annotation {ann_id}")


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int:
    """One COCO keypoints JSON; ``file_name`` is each image's path relative to the
    JSON's folder. Missing points are written (0, 0, 0); ``bbox`` only where the
    sample has a box."""
    if schema.task != "landmarks":
        raise ValueError(f"the COCO format holds landmarks, not {schema.task}")
    out = Path(out)
    images: dict[str, dict[str, Any]] = {}
    annotations = []
    for sample, label in records:
        file_name = rel_key(sample.image_path, out.parent)
        img = images.setdefault(file_name, {"id": len(images) + 1, "file_name": file_name,
                                            "width": sample.width, "height": sample.height})
        pts = np.asarray(label.points, dtype=np.float64).reshape(-1, 2)
        present = np.isfinite(pts).all(axis=1)
        vis = np.asarray(label.visibility) if label.visibility is not None else present * 2
        vis = np.where(present, vis, 0)
        flat = [v for (x, y), f in zip(pts, vis, strict=True)
                for v in ((float(x), float(y), int(f)) if f else (0, 0, 0))]
        ann: dict[str, Any] = {"id": len(annotations) + 1, "image_id": img["id"],
                               "category_id": 1, "iscrowd": 0, "keypoints": flat,
                               "num_keypoints": int((vis > 0).sum())}
        if sample.box is not None:
            x0, y0, x1, y1 = (float(v) for v in sample.box)
            ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            ann["area"] = (x1 - x0) * (y1 - y0)
        annotations.append(ann)
    category = {"id": 1, "name": schema.name or "object", "supercategory": schema.name or "object",
                "keypoints": list(schema.keypoints),
                "skeleton": [[a + 1, b + 1] for a, b in schema.skeleton]}
    doc = {"images": list(images.values()), "annotations": annotations, "categories": [category]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc))
    return len(annotations)
