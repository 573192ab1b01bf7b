"""CVAT for images 1.1 XML: ``annotations.xml`` (alone or in the export's folder, with
the frames under ``images/``).

Each ``<image name width height>`` holds shapes. Keypoints come either as
``<skeleton label=S>`` elements, one ``<points label=NODE points="x,y"
occluded="0|1" outside="0|1">`` per node, or as ``<points label=L
points="x0,y0;x1,y1;...">`` shapes. One sample per skeleton (or points shape) of the
file's keypoint label: the skeleton label most used in the file, else the points
label most used. Skeleton nodes are named and ordered as the ``<labels>`` meta lists
them (the child labels whose ``<parent>`` is the skeleton) and their edges come from
the skeleton's ``<svg>``; ``outside="1"`` or an absent node is a missing point,
``occluded="1"`` an occluded one. A points shape's points are ``p0..``, occluded as a
whole. Boxes, polygons, tags and other labels are not keypoints and are left out.

Keys are the image name (``#n``, the shape's position among the image's keypoint
shapes, when it has several). Names are relative to the XML's ``images/`` folder
(CVAT's export) or its own folder. CVAT for video files (``<track>``) are refused
with a message: export the task as CVAT for images.

The writer (:func:`write`) writes CVAT for images 1.1 with a skeleton label named
after the schema: to a ``.xml`` file (upload it into the CVAT task holding the same
images), or to a new folder as CVAT exports it (``annotations.xml`` + ``images/``).
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import fmt, number
from core.formats.guard import inside, read_capped
from core.project import Label, LabelSchema, Sample
from core.schemas import landmarks_schema, schema_for_keypoints

XML_NAME = "annotations.xml"


def parse(path: Path) -> ET.Element:
    try:
        doc = ET.fromstring(read_capped(path))
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except ET.ParseError as exc:
        raise FormatError(f"{path}: not readable XML ({exc})") from None
    if doc.tag != "annotations":
        raise FormatError(f"{path}: not a CVAT file (root element <{doc.tag[:40]}>)")
    if doc.find("image") is None and doc.find("track") is not None:
        raise FormatError(f"{path}: CVAT for video (tracks) is not read; export the task "
                          "as 'CVAT for images 1.1'")
    return doc


def find_xml(source: Path) -> Path:
    source = Path(source)
    if source.is_dir():
        path = source / XML_NAME
        if not path.is_file():
            raise FormatError(f"{source}: no {XML_NAME} in this folder")
        return path
    return source


def _looks_like_cvat(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"<annotations" in head and (b"<version>1.1" in head or b"<meta" in head)


# ----------------------------------------------------------------------------- meta


def _meta_labels(doc: ET.Element) -> list[ET.Element]:
    return [lab for lab in doc.iter("label") if lab.find("name") is not None]


def skeleton_nodes(doc: ET.Element, label: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Node names (meta order) and edges of skeleton ``label``; names from the shapes
    themselves (first-seen order) when the meta does not list them."""
    names = [(lab.findtext("name") or "") for lab in _meta_labels(doc)
             if (lab.findtext("parent") or "") == label]
    svg = next((lab.findtext("svg") or "" for lab in _meta_labels(doc)
                if lab.findtext("name") == label), "")
    if not names:
        seen: dict[str, None] = {}
        for sk in doc.iter("skeleton"):
            if sk.get("label") == label:
                for p in sk.findall("points"):
                    seen.setdefault(p.get("label") or "", None)
        names = list(seen)
    return names, _svg_edges(svg, names)


_TAG = re.compile(r"<(circle|line)\b([^>]*)>")
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def _svg_edges(svg: str, names: list[str]) -> list[tuple[int, int]]:
    """Edges of CVAT's skeleton SVG: circles carry data-node-id and data-label-name,
    lines data-node-from and data-node-to."""
    node_name: dict[str, str] = {}
    lines = []
    for tag, attrs in _TAG.findall(svg):
        a = dict(_ATTR.findall(attrs))
        if tag == "circle" and "data-node-id" in a:
            node_name[a["data-node-id"]] = a.get("data-label-name", "")
        elif tag == "line" and a.get("data-type") == "edge":
            lines.append((a.get("data-node-from", ""), a.get("data-node-to", "")))
    index = {n: i for i, n in enumerate(names)}
    edges = []
    for f, t in lines:
        a, b = index.get(node_name.get(f, "")), index.get(node_name.get(t, ""))
        if a is not None and b is not None and a != b:
            edges.append((a, b))
    return edges


def _target(doc: ET.Element) -> tuple[str, str]:
    """(``skeleton`` or ``points``, label) of the file's keypoint shapes."""
    skeletons = Counter(sk.get("label") or "" for img in doc.iter("image")
                        for sk in img.findall("skeleton"))
    if skeletons:
        return "skeleton", skeletons.most_common(1)[0][0]
    points = Counter(p.get("label") or "" for img in doc.iter("image")
                     for p in img.findall("points"))
    if points:
        return "points", points.most_common(1)[0][0]
    raise FormatError("no <skeleton> or <points> shapes")


def _points_count(doc: ET.Element, label: str) -> int:
    counts = Counter(len((p.get("points") or "").split(";")) for img in doc.iter("image")
                     for p in img.findall("points") if p.get("label") == label)
    return counts.most_common(1)[0][0]


# ----------------------------------------------------------------------------- shapes


def parse_points(text: str) -> np.ndarray:
    """``x0,y0;x1,y1`` -> (N, 2); ValueError for anything else."""
    out = []
    for i, pair in enumerate(text.split(";")):
        xy = pair.split(",")
        if len(xy) != 2:
            raise ValueError(f"points: {pair.strip()[:30]!r} is not x,y")
        out.append([number(xy[0], f"point {i} x"), number(xy[1], f"point {i} y")])
    return np.array(out, dtype=np.float64)


def _flag(el: ET.Element, name: str) -> bool:
    value = (el.get(name) or "0").strip().lower()
    if value not in ("0", "1", "true", "false"):
        raise ValueError(f"{name} must be 0 or 1, found {value[:10]!r}")
    return value in ("1", "true")


def _skeleton(sk: ET.Element, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    k = len(index)
    pts = np.full((k, 2), np.nan)
    vis = np.zeros(k, np.int8)
    seen = set()
    for p in sk.findall("points"):
        name = p.get("label") or ""
        if name not in index:
            raise ValueError(f"node {name[:40]!r} is not in the skeleton")
        if name in seen:
            raise ValueError(f"node {name[:40]!r} appears twice")
        seen.add(name)
        xy = parse_points(p.get("points") or "")
        if len(xy) != 1:
            raise ValueError(f"node {name[:40]!r} has {len(xy)} points, not one")
        if _flag(p, "outside"):
            continue
        pts[index[name]] = xy[0]
        vis[index[name]] = 1 if _flag(p, "occluded") else 2
    return pts, vis


def _points_shape(el: ET.Element, k: int) -> tuple[np.ndarray, np.ndarray]:
    xy = parse_points(el.get("points") or "")
    if len(xy) != k:
        raise ValueError(f"{k} points expected, found {len(xy)}")
    if _flag(el, "outside"):
        raise ValueError("the shape is outside the frame")
    vis = np.full(k, 1 if _flag(el, "occluded") else 2, np.int8)
    return xy, vis


# ----------------------------------------------------------------------------- reader


def image_root(xml: Path, doc: ET.Element) -> Path:
    here = xml.parent
    first = next((i.get("name") for i in doc.iter("image") if i.get("name")), None)
    if first and (here / "images").is_dir():
        try:
            if inside(here / "images", first).is_file():
                return here / "images"
        except ValueError:
            pass
    return here


class CvatReader:
    name = "cvat"
    tasks = ("landmarks",)

    def _doc(self, source: Path) -> tuple[Path, ET.Element]:
        xml = find_xml(source)
        return xml, parse(xml)

    def root(self, source: Path) -> Path:
        xml, doc = self._doc(source)
        return image_root(xml, doc)

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if source.is_dir():
            return (source / XML_NAME).is_file() and _looks_like_cvat(source / XML_NAME)
        return source.suffix.lower() == ".xml" and _looks_like_cvat(source)

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: CVAT keypoints are landmarks, not {task!r}")
        xml, doc = self._doc(source)
        return _schema(xml, doc)

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        xml, doc = self._doc(source)
        schema = _schema(xml, doc)
        kind, label = _target(doc)
        root = image_root(xml, doc)
        index = {n: i for i, n in enumerate(schema.keypoints)}
        for n, image in enumerate(doc.iter("image")):
            name = image.get("name") or ""
            shapes = [s for s in image.findall(kind) if s.get("label") == label]
            if not shapes:
                continue
            where = name or f"{xml.name}#image {n}"
            try:
                path = inside(root, name)
            except ValueError as exc:
                yield Skip(where, str(exc))
                continue
            if not path.is_file():
                yield Skip(where, f"image missing: {name[:80]}")
                continue
            for pos, shape in enumerate(shapes):
                key = name if len(shapes) == 1 else f"{name}#{pos}"
                try:
                    if kind == "skeleton":
                        pts, vis = _skeleton(shape, index)
                    else:
                        pts, vis = _points_shape(shape, schema.n_keypoints)
                except ValueError as exc:
                    yield Skip(key, str(exc))
                    continue
                if not vis.any():
                    yield Skip(key, "no labelled point (all outside)")
                    continue
                yield RawItem(key, path, pts, vis)


def _schema(xml: Path, doc: ET.Element) -> LabelSchema:
    try:
        kind, label = _target(doc)
    except FormatError as exc:
        raise FormatError(f"{xml}: {exc}") from None
    if kind == "points":
        return landmarks_schema(_points_count(doc, label))
    names, edges = skeleton_nodes(doc, label)
    try:
        return schema_for_keypoints(names, edges, name=label)
    except ValueError as exc:
        raise FormatError(f"{xml}: skeleton {label!r}: {exc}") from None


# ----------------------------------------------------------------------------- writer


def _svg(schema: LabelSchema) -> str:
    """A CVAT skeleton SVG: nodes on a circle, the schema's edges between them."""
    k = schema.n_keypoints
    pos = [(50 + 40 * np.cos(2 * np.pi * i / k), 50 + 40 * np.sin(2 * np.pi * i / k))
           for i in range(k)]
    parts = [f'<line x1="{pos[a][0]:.2f}" y1="{pos[a][1]:.2f}" x2="{pos[b][0]:.2f}" '
             f'y2="{pos[b][1]:.2f}" stroke="black" data-type="edge" data-node-from="{a + 1}" '
             f'stroke-width="0.5" data-node-to="{b + 1}"></line>' for a, b in schema.skeleton]
    parts += [f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x:.2f}" cy="{y:.2f}" '
              f'stroke-width="0.1" data-type="element node" data-element-id="{i + 1}" '
              f'data-node-id="{i + 1}" data-label-name="{name}"></circle>'
              for i, ((x, y), name) in enumerate(zip(pos, schema.keypoints, strict=True))]
    return "".join(parts)


def _meta(schema: LabelSchema, label: str, size: int) -> ET.Element:
    meta = ET.Element("meta")
    task = ET.SubElement(meta, "task")
    for tag, text in (("name", label), ("size", str(size)), ("mode", "annotation"),
                      ("overlap", "0"), ("flipped", "False")):
        ET.SubElement(task, tag).text = text
    labels = ET.SubElement(task, "labels")
    sk = ET.SubElement(labels, "label")
    ET.SubElement(sk, "name").text = label
    ET.SubElement(sk, "type").text = "skeleton"
    ET.SubElement(sk, "attributes")
    ET.SubElement(sk, "svg").text = _svg(schema)
    for name in schema.keypoints:
        node = ET.SubElement(labels, "label")
        ET.SubElement(node, "name").text = name
        ET.SubElement(node, "type").text = "points"
        ET.SubElement(node, "attributes")
        ET.SubElement(node, "parent").text = label
    return meta


def _image_name(sample: Sample, taken: dict[str, Path]) -> str:
    """The sample's path (kept as CVAT named it); made unique if two images collide."""
    name = Path(sample.path).as_posix() if not Path(sample.path).is_absolute() else \
        Path(sample.path).name
    base, n = name, 1
    while name in taken and taken[name] != sample.image_path:
        n += 1
        p = Path(base)
        name = (p.parent / f"{p.stem}_{n}{p.suffix}").as_posix()
    taken[name] = sample.image_path
    return name


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int:
    """See the module docstring."""
    if schema.task != "landmarks":
        raise ValueError(f"the CVAT format holds landmarks, not {schema.task}")
    out = Path(out)
    folder = out.suffix.lower() != ".xml"
    if folder and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder (a CVAT export "
                              "makes a new folder; name a .xml file for the XML alone)")
    label = schema.name or "object"
    taken: dict[str, Path] = {}
    by_image: dict[str, list[tuple[Sample, Label]]] = defaultdict(list)
    for sample, lab in records:
        by_image[_image_name(sample, taken)].append((sample, lab))
    doc = ET.Element("annotations")
    ET.SubElement(doc, "version").text = "1.1"
    doc.append(_meta(schema, label, len(by_image)))
    n = 0
    for i, (name, recs) in enumerate(by_image.items()):
        s0 = recs[0][0]
        image = ET.SubElement(doc, "image", {"id": str(i), "name": name,
                                             "width": str(s0.width), "height": str(s0.height)})
        for _, lab in recs:
            image.append(_skeleton_element(schema, label, lab))
            n += 1
        if folder:
            target = out / "images" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s0.image_path, target)
    ET.indent(doc)
    path = out / XML_NAME if folder else out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(doc, "utf-8"))
    return n


def _skeleton_element(schema: LabelSchema, label: str, lab: Label) -> ET.Element:
    pts = np.asarray(lab.points, dtype=np.float64).reshape(-1, 2)
    present = np.isfinite(pts).all(axis=1)
    vis = np.asarray(lab.visibility) if lab.visibility is not None else present * 2
    sk = ET.Element("skeleton", {"label": label, "source": "manual", "z_order": "0"})
    for name, (x, y), p, v in zip(schema.keypoints, pts, present, vis, strict=True):
        shown = bool(p and v > 0)
        attrs: dict[str, Any] = {
            "label": name, "source": "manual",
            "occluded": "1" if shown and v == 1 else "0", "outside": "0" if shown else "1",
            "points": f"{fmt(x)},{fmt(y)}" if shown else "0,0"}
        ET.SubElement(sk, "points", attrs)
    return sk
