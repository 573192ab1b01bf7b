"""Label Studio JSON exports with ``keypointlabels`` (and the flat JSON-MIN export).

An export is a list of tasks: ``{"id", "data": {"image": ...}, "annotations": [{"result":
[...], "was_cancelled", "updated_at"}], "predictions": [...]}``. A keypoint result is
``{"id", "type": "keypointlabels", "original_width", "original_height",
"image_rotation", "value": {"x", "y", "width", "keypointlabels": [NAME]}}`` with ``x``
and ``y`` in percent of the image (0-100). The newest annotation of a task that was not
cancelled is read (predictions never: they are a model's, not a person's).

Instances: keypoints nested in a ``rectanglelabels`` region (``parentID``) or joined
to one by a ``relation`` (as sleap-io writes) are one sample each, with the rectangle
as its box; otherwise all the annotation's keypoints are one sample, and a task naming
a keypoint twice without regions to tell the instances apart is skipped.

The export does not carry the labelling config, so keypoint names are ordered as the
``<KeyPointLabels>`` of a Label Studio config ``.xml`` saved beside the JSON lists
them, else in natural order of their names (stable across exports). Flip pairs come
from the names. Images are looked up from ``data.image``: ``/data/local-files/?d=PATH``
and ``/data/upload/N/NAME`` by their path under the JSON's folder, then by file name
(with or without the upload's hash prefix) beside the JSON or in its ``images/``;
URLs by file name. Keys are the image's path under the JSON's folder (``#n`` for the
n-th instance when there are several).
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import rel_key
from core.formats.guard import SMALL_FILE_LIMIT, inside, read_capped, read_text
from core.project import LabelSchema
from core.schemas import schema_for_keypoints

KEYPOINT = "keypointlabels"
RECT = "rectanglelabels"
NO_ANNOTATION = "no annotation"


def load(path: Path) -> list[Any]:
    try:
        doc = json.loads(read_text(path))
    except ValueError as exc:
        raise FormatError(f"{path}: not readable JSON ({str(exc)[:120]})") from None
    except RecursionError:
        raise FormatError(f"{path}: not readable JSON (nested too deeply)") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise FormatError(f"{path}: not a Label Studio export (a list of tasks)")
    return doc


def _is_min(task: dict[str, Any]) -> bool:
    return "data" not in task and isinstance(task.get("image"), str)


def _results(task: Any) -> tuple[list[Any] | None, str | None]:
    """The result list of the task's newest annotation that was not cancelled, or
    (None, reason)."""
    if not isinstance(task, dict):
        return None, "task is not an object"
    if _is_min(task):  # JSON-MIN: {"image", "<from_name>": [values with keypointlabels]}
        out = []
        for key, value in task.items():
            if isinstance(value, list):
                for v in value:
                    if isinstance(v, dict) and KEYPOINT in v:
                        out.append({"type": KEYPOINT, "from_name": key, "value": v,
                                    "original_width": v.get("original_width"),
                                    "original_height": v.get("original_height")})
        return out, None
    anns = task.get("annotations", task.get("completions"))
    if not isinstance(anns, list):
        return None, "no annotations list"
    live = [a for a in anns if isinstance(a, dict) and not a.get("was_cancelled")
            and isinstance(a.get("result"), list)]
    if not live:
        return None, NO_ANNOTATION
    newest = max(enumerate(live), key=lambda ia: (str(ia[1].get("updated_at")
                                                      or ia[1].get("created_at") or ""), ia[0]))
    return newest[1]["result"], None


def _names_of(result: list[Any]) -> Iterator[str]:
    for r in result:
        if isinstance(r, dict) and r.get("type") == KEYPOINT:
            labels = (r.get("value") or {}).get(KEYPOINT) if isinstance(r.get("value"), dict) \
                else None
            if isinstance(labels, list) and labels and isinstance(labels[0], str):
                yield labels[0]


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def config_names(folder: Path) -> list[str] | None:
    """Keypoint names in the order of a Label Studio config ``.xml`` in ``folder``."""
    for p in sorted(folder.glob("*.xml")):
        try:
            head = read_capped(p, SMALL_FILE_LIMIT)
            if b"KeyPointLabels" not in head:
                continue
            view = ET.fromstring(head)
        except (ValueError, ET.ParseError):
            continue
        names = [lab.get("value", "") for kp in view.iter("KeyPointLabels")
                 for lab in kp.iter("Label")]
        if names:
            return list(dict.fromkeys(names))
    return None


# ----------------------------------------------------------------------------- images


def _candidates(ref: str) -> list[str]:
    """Relative paths to try for a task's ``data.image``, most specific first."""
    out = []
    parsed = urllib.parse.urlparse(ref)
    query = urllib.parse.parse_qs(parsed.query)
    if "d" in query:  # /data/local-files/?d=path
        out.append(query["d"][0])
    if parsed.scheme in ("http", "https", "s3", "gs", "azure-blob"):
        path = urllib.parse.unquote(parsed.path)
    else:
        path = urllib.parse.unquote(parsed.path or ref)
        rel = path.lstrip("/")
        out += [rel.removeprefix("data/"), rel]
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    if name:
        out += [name, f"images/{name}"]
        m = re.match(r"^[0-9a-f]{8}-(.+)$", name)  # upload hash prefix
        if m:
            out += [m.group(1), f"images/{m.group(1)}"]
    return list(dict.fromkeys(p for p in out if p))


def find_image(root: Path, ref: str) -> Path | None:
    for rel in _candidates(ref):
        try:
            p = inside(root, rel)
        except ValueError:
            continue
        if p.is_file():
            return p
    return None


# ----------------------------------------------------------------------------- instances


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what}: not a number")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what}: not a finite number")
    return v


def _scale(r: dict[str, Any]) -> tuple[float, float] | None:
    """Pixels per percent (width / 100, height / 100), or None when the result lacks
    the image size (then the importer scales fractions)."""
    w, h = r.get("original_width"), r.get("original_height")
    if w is None or h is None:
        return None
    w, h = _float(w, "original_width"), _float(h, "original_height")
    if w <= 0 or h <= 0:
        raise ValueError("original_width and original_height must be positive")
    return w / 100, h / 100


def instances(result: list[Any], index: dict[str, int]) -> list[tuple[
        np.ndarray, np.ndarray, tuple[float, float, float, float] | None, bool]]:
    """(points, visibility, box, normalized) per instance; ValueError with a reason."""
    rects = {r.get("id"): r for r in result if isinstance(r, dict) and r.get("type") == RECT}
    kps = [r for r in result if isinstance(r, dict) and r.get("type") == KEYPOINT]
    links: dict[Any, Any] = {}
    for r in result:
        if isinstance(r, dict) and r.get("type") == "relation":
            a, b = r.get("from_id"), r.get("to_id")
            if a in rects and b not in rects:
                links[b] = a
            elif b in rects and a not in rects:
                links[a] = b
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in kps:
        parent = r.get("parentID") if r.get("parentID") in rects else links.get(r.get("id"))
        groups.setdefault(parent, []).append(r)
    out = []
    for parent, members in groups.items():
        k = len(index)
        pts = np.full((k, 2), np.nan)
        normalized = False
        for r in members:
            value = r.get("value")
            if not isinstance(value, dict):
                raise ValueError("a keypoint result has no value")
            labels = value.get(KEYPOINT)
            if not (isinstance(labels, list) and labels and isinstance(labels[0], str)):
                raise ValueError("a keypoint has no label")
            name = labels[0]
            if name not in index:
                raise ValueError(f"keypoint {name[:40]!r} is not in the schema")
            if r.get("image_rotation") not in (None, 0, 0.0):
                raise ValueError("rotated image (image_rotation is not 0)")
            x, y = _float(value.get("x"), f"{name} x"), _float(value.get("y"), f"{name} y")
            scale = _scale(r)
            if scale is None:
                normalized = True
                scale = (0.01, 0.01)
            elif normalized:
                raise ValueError("some keypoints carry the image size and some do not")
            i = index[name]
            if not np.isnan(pts[i]).all():
                raise ValueError(f"keypoint {name[:40]!r} appears twice in one instance "
                                 "(no regions group the instances)")
            pts[i] = x * scale[0], y * scale[1]
        box = None
        if parent is not None:
            rv = rects[parent].get("value")
            if not isinstance(rv, dict):
                raise ValueError("a region has no value")
            s = (0.01, 0.01) if normalized else (_scale(rects[parent]) or (0.01, 0.01))
            x0, y0 = _float(rv.get("x"), "box x") * s[0], _float(rv.get("y"), "box y") * s[1]
            w, h = _float(rv.get("width"), "box width") * s[0], \
                _float(rv.get("height"), "box height") * s[1]
            if w > 0 and h > 0:
                box = (x0, y0, x0 + w, y0 + h)
        vis = np.where(np.isfinite(pts).all(axis=1), 2, 0).astype(np.int8)
        out.append((pts, vis, box, normalized))
    return out


# ----------------------------------------------------------------------------- reader


class LabelStudioReader:
    name = "labelstudio"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        return Path(source).parent

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if not (source.is_file() and source.suffix.lower() == ".json"):
            return False
        try:
            with source.open("rb") as f:
                head = f.read(1 << 20)
        except OSError:
            return False
        return b'"keypointlabels"' in head

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: Label Studio keypoints are landmarks, not {task!r}")
        source = Path(source)
        names = config_names(source.parent)
        if names is None:
            found: set[str] = set()
            for t in load(source):
                result, _ = _results(t)
                found.update(_names_of(result or []))
            if not found:
                raise FormatError(f"{source}: no keypointlabels in any annotation")
            names = sorted(found, key=_natural)
        try:
            return schema_for_keypoints(names, name="labelstudio")
        except ValueError as exc:
            raise FormatError(f"{source}: {exc}") from None

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        source = Path(source)
        schema = self.schema(source, task)
        index = {n: i for i, n in enumerate(schema.keypoints)}
        root = source.parent
        unannotated = 0
        for n, t in enumerate(load(source)):
            tid = t.get("id", n) if isinstance(t, dict) else n
            where = f"{source.name}#task {tid}"
            result, reason = _results(t)
            if result is None and reason == NO_ANNOTATION:
                unannotated += 1
                continue
            if result is None:
                yield Skip(where, reason or "unreadable task")
                continue
            ref = t.get("image") if _is_min(t) else (t.get("data") or {}).get("image") \
                if isinstance(t.get("data"), dict) else None
            if not isinstance(ref, str) or not ref:
                yield Skip(where, "no data.image")
                continue
            try:
                found = instances(result, index)
            except ValueError as exc:
                yield Skip(where, str(exc))
                continue
            if not found:
                continue  # a task nobody put a keypoint on
            image = find_image(root, ref)
            if image is None:
                yield Skip(where, f"image not found: {ref[:80]}")
                continue
            key = rel_key(image, root)
            for i, (pts, vis, box, normalized) in enumerate(found):
                yield RawItem(key if len(found) == 1 else f"{key}#{i}", image, pts, vis,
                              box=box, normalized=normalized)
        if unannotated:
            yield Skip(source.name, f"{unannotated} tasks without an annotation (or only "
                       "predictions or cancelled ones) left out")
