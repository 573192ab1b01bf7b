"""Ultralytics YOLO-pose datasets: a dataset YAML and one ``labels/*.txt`` per image.

The YAML (``data.yaml``, or the one in the folder given) names ``path`` (the dataset
root), the ``train``/``val``/``test`` images (a folder, a ``.txt`` list of images, or
a list of either), ``kpt_shape: [K, 2 or 3]``, ``flip_idx`` (each keypoint's mirror
partner) and ``names`` (classes). Keypoint names come from ``kpt_names`` (per class;
class 0's are used) or sleap-io's ``node_names``; without them the points are
``p0..``, except that 17 points with COCO's flip_idx are COCO's keypoints (what
Ultralytics' own coco-pose YAML describes). A ``skeleton`` list of index pairs, which
sleap-io writes, is read too.

Each image's label file is found as Ultralytics finds it: the last ``images`` folder
of its path replaced by ``labels``, the suffix by ``.txt``. A line is one instance,
``class cx cy w h`` (the box centre and size) then K keypoints ``x y [v]``, all as
fractions of the image width and height; ``v`` is 0 (not labelled), 1 (occluded) or 2
(visible), and with two values per point ``0 0`` means not labelled. Each instance
is one sample with its box, keyed by the image path (``#n``, the line's position
among the file's lines, when the file has several). The class is not kept. Images
without a label file or with an empty one are backgrounds (one line says how many).

The writer (:func:`write`) makes a new folder: ``data.yaml``, the images copied under
``images/`` (where they were if they came from a YOLO dataset, so its train/val/test
split is kept; else ``images/train`` or ``images/val`` by the project's split) and
their label files under ``labels/``, visibility always written (``kpt_shape: [K, 3]``). A sample without a box gets the box of its points
plus 10% on each side, clipped to the image.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.common import IMAGE_EXTS, fmt, number, rel_key, walk
from core.formats.guard import SMALL_FILE_LIMIT, inside, read_text
from core.project import Label, LabelSchema, Sample
from core.schemas import COCO17, schema_for_keypoints

YAML_SUFFIXES = (".yaml", ".yml")
LIST_LIMIT = 64 << 20
BOX_MARGIN = 0.1


# ----------------------------------------------------------------------------- dataset YAML


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(read_text(path, SMALL_FILE_LIMIT))
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise FormatError(f"{path}: not readable YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: not an Ultralytics dataset YAML")
    return doc


def _has_kpt_shape(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return b"kpt_shape" in f.read(1 << 16)
    except OSError:
        return False


def find_yaml(source: Path) -> Path:
    source = Path(source)
    if not source.is_dir():
        return source
    found = [p for p in sorted(source.iterdir()) if p.suffix.lower() in YAML_SUFFIXES
             and p.is_file() and _has_kpt_shape(p)]
    if not found:
        raise FormatError(f"{source}: no dataset YAML with kpt_shape in this folder")
    return found[0]


class Dataset:
    """A parsed dataset YAML."""

    def __init__(self, source: Path) -> None:
        self.yaml = find_yaml(Path(source))
        doc = _load_yaml(self.yaml)
        self.doc = doc
        shape = doc.get("kpt_shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in shape)
                and shape[0] >= 1 and shape[1] in (2, 3)):
            raise FormatError(f"{self.yaml}: kpt_shape must be [number of keypoints, 2 or 3]")
        self.k, self.dims = shape
        self.root = self._root(doc.get("path"))

    def _root(self, path: Any) -> Path:
        here = self.yaml.parent
        if path is None or path == "":
            return here
        if not isinstance(path, str):
            raise FormatError(f"{self.yaml}: path must be a folder name")
        p = Path(path)
        folder = p if p.is_absolute() else here / p
        try:
            return folder if folder.is_dir() else here
        except (OSError, ValueError) as exc:  # too long, a NUL byte
            why = getattr(exc, "strerror", None) or str(exc)
            raise FormatError(f"{self.yaml}: path cannot be a folder ({why})") from None

    def schema(self) -> LabelSchema:
        k, doc = self.k, self.doc
        pairs = self._flip_pairs()
        names = self._names()
        skeleton = doc.get("skeleton") or []
        try:
            edges = [(int(a), int(b)) for a, b in skeleton]
        except (TypeError, ValueError):
            raise FormatError(f"{self.yaml}: skeleton must be pairs of keypoint indices") from None
        if names is None:
            if k == COCO17.n_keypoints and set(pairs) == set(COCO17.flip_pairs):
                return COCO17
            names = [f"p{i}" for i in range(k)]
        cls = doc.get("names")
        name = str(cls.get(0, "") if isinstance(cls, dict) else (cls[0] if isinstance(
            cls, list) and cls else "")) or "yolo"
        try:
            return schema_for_keypoints(names, edges, name=name, flip_pairs=pairs)
        except ValueError as exc:
            raise FormatError(f"{self.yaml}: {exc}") from None

    def _flip_pairs(self) -> list[tuple[int, int]]:
        flip = self.doc.get("flip_idx")
        if flip is None:
            return []
        k = self.k
        if not (isinstance(flip, list) and len(flip) == k and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < k for v in flip)):
            raise FormatError(f"{self.yaml}: flip_idx must list {k} keypoint indices")
        if any(flip[flip[i]] != i for i in range(k)):
            raise FormatError(f"{self.yaml}: flip_idx is not its own inverse "
                              "(each keypoint and its mirror must point at each other)")
        return [(i, j) for i, j in enumerate(flip) if i < j]

    def _names(self) -> list[str] | None:
        kn = self.doc.get("kpt_names")
        names = None
        if isinstance(kn, dict) and kn:
            names = kn.get(0, next(iter(kn.values())))
        elif isinstance(kn, list) and kn:
            names = kn[0] if isinstance(kn[0], list) else kn
        elif isinstance(self.doc.get("node_names"), list):
            names = self.doc["node_names"]
        if names is None:
            return None
        if not isinstance(names, list) or len(names) != self.k:
            raise FormatError(f"{self.yaml}: kpt_names must list {self.k} names")
        return [str(n) for n in names]

    def images(self) -> Iterator[Path | Skip]:
        """Every image the splits name, once, in YAML order."""
        seen: set[Path] = set()
        for split in ("train", "val", "test"):
            entries = self.doc.get(split)
            if entries is None or entries == "":
                continue
            for entry in entries if isinstance(entries, list) else [entries]:
                for p in self._entry(str(entry), split):
                    if isinstance(p, Path):
                        if p in seen:
                            continue
                        seen.add(p)
                    yield p

    def _entry(self, entry: str, split: str) -> Iterator[Path | Skip]:
        try:
            path = _listed(self.root, self.root, entry)
        except ValueError as exc:
            yield Skip(f"{self.yaml.name}:{split}", str(exc))
            return
        if path.is_dir():
            yield from (p for p in walk(path, IMAGE_EXTS) if p.is_file())
        elif path.suffix.lower() == ".txt" and path.is_file():
            try:
                lines = read_text(path, LIST_LIMIT).splitlines()
            except ValueError as exc:
                yield Skip(rel_key(path, self.root), str(exc))
                return
            for n, line in enumerate(lines, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    img = _listed(self.root, path.parent, line)
                except ValueError as exc:
                    yield Skip(f"{rel_key(path, self.root)}:{n}", str(exc))
                    continue
                yield img if img.is_file() else Skip(f"{rel_key(path, self.root)}:{n}",
                                                     f"image missing: {line[:80]}")
        else:
            yield Skip(f"{self.yaml.name}:{split}", f"{entry[:80]!r} is not a folder or an "
                       "image list under the dataset root")


def _listed(root: Path, here: Path, line: str) -> Path:
    """An image an image-list file names: ``./x`` from the list's folder, an absolute
    path as it stands, anything else from the dataset root; it must lie in the root."""
    if Path(line).is_absolute():
        path = Path(line)
        if not path.resolve().is_relative_to(root.resolve()):
            raise ValueError(f"path {line[:80]!r} leaves the dataset folder")
        return path
    base = rel_key(here, root) if line.startswith("./") else ""
    return inside(root, f"{base}/{line[2:]}" if base and base != "." else line.removeprefix("./"))



def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder becomes ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


# ----------------------------------------------------------------------------- label lines


def parse_line(line: str, k: int, dims: int
               ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """(points (K, 2), visibility (K,), box x0 y0 x1 y1), all as fractions of the image;
    ValueError with a one-line reason."""
    cells = line.split()
    n = 5 + k * dims
    if len(cells) != n:
        raise ValueError(f"expected {n} numbers (class, box, {k} keypoints x {dims}), "
                         f"found {len(cells)}")
    cls = number(cells[0], "class")
    if cls < 0 or not cls.is_integer():
        raise ValueError(f"class: not a class index: {cells[0][:20]!r}")
    cx, cy, w, h = (number(c, "box") for c in cells[1:5])
    if w <= 0 or h <= 0:
        raise ValueError("box: width and height must be positive")
    values = np.array([number(c, f"keypoint {i // dims}") for i, c in enumerate(cells[5:])])
    values = values.reshape(k, dims)
    points = values[:, :2].copy()
    if dims == 3:
        vis = values[:, 2]
        if not np.isin(vis, (0, 1, 2)).all():
            raise ValueError("visibility must be 0, 1 or 2")
        vis = vis.astype(np.int8)
    else:
        vis = np.where((points == 0).all(axis=1), 0, 2).astype(np.int8)
    points[vis == 0] = np.nan
    return points, vis, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _items_of(image: Path, root: Path, k: int, dims: int) -> Iterator[RawItem | Skip] | None:
    """Items of one image; None for a background (no label file or an empty one)."""
    lp = label_path(image)
    where = rel_key(lp, root)
    if not lp.exists():
        return None
    try:
        text = read_text(lp, SMALL_FILE_LIMIT)
    except ValueError as exc:
        return iter([Skip(where, str(exc))])
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        return None
    key = rel_key(image, root)

    def gen() -> Iterator[RawItem | Skip]:
        for pos, (n, ln) in enumerate(lines):
            try:
                points, vis, box = parse_line(ln, k, dims)
            except ValueError as exc:
                yield Skip(f"{where}:{n}", str(exc))
                continue
            if not vis.any():
                yield Skip(f"{where}:{n}", "no labelled keypoint")
                continue
            yield RawItem(key if len(lines) == 1 else f"{key}#{pos}", image, points, vis,
                          box=box, normalized=True)
    return gen()


class YoloPoseReader:
    name = "yolo-pose"
    tasks = ("landmarks",)

    def root(self, source: Path) -> Path:
        return Dataset(source).root

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if source.is_dir():
            return any(p.suffix.lower() in YAML_SUFFIXES and p.is_file() and _has_kpt_shape(p)
                       for p in source.iterdir())
        return source.suffix.lower() in YAML_SUFFIXES and _has_kpt_shape(source)

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: YOLO-pose labels are landmarks, not {task!r}")
        return Dataset(source).schema()

    def read(self, source: Path, task: str) -> Iterator[RawItem | Skip]:
        self.schema(source, task)
        ds = Dataset(source)
        backgrounds = 0
        for image in ds.images():
            if isinstance(image, Skip):
                yield image
                continue
            items = _items_of(image, ds.root, ds.k, ds.dims)
            if items is None:
                backgrounds += 1
                continue
            yield from items
        if backgrounds:
            yield Skip(ds.yaml.name, f"{backgrounds} images without labels (backgrounds) "
                       "left out")


# ----------------------------------------------------------------------------- writer


def _box_of(sample: Sample, pts: np.ndarray, present: np.ndarray
            ) -> tuple[float, float, float, float]:
    if sample.box is not None:
        return tuple(float(v) for v in sample.box)  # type: ignore[return-value]
    if not present.any():
        return 0.0, 0.0, float(sample.width), float(sample.height)
    p = pts[present]
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    mx, my = max((x1 - x0) * BOX_MARGIN, 1.0), max((y1 - y0) * BOX_MARGIN, 1.0)
    return (max(0.0, x0 - mx), max(0.0, y0 - my), min(float(sample.width), x1 + mx),
            min(float(sample.height), y1 + my))


def label_line(sample: Sample, label: Label, k: int) -> str:
    pts = np.asarray(label.points, dtype=np.float64).reshape(k, 2)
    present = np.isfinite(pts).all(axis=1)
    vis = np.asarray(label.visibility) if label.visibility is not None else present * 2
    vis = np.where(present, vis, 0)
    w, h = float(sample.width), float(sample.height)
    x0, y0, x1, y1 = _box_of(sample, pts, vis > 0)
    cells = ["0", fmt((x0 + x1) / 2 / w), fmt((y0 + y1) / 2 / h), fmt((x1 - x0) / w),
             fmt((y1 - y0) / h)]
    for (x, y), v in zip(pts, vis, strict=True):
        cells += [fmt(x / w), fmt(y / h), str(int(v))] if v else ["0", "0", "0"]
    return " ".join(cells)


def _place(sample: Sample, taken: set[str]) -> Path:
    """Where an image goes: where it was in a YOLO dataset (``images/<split>/...``),
    else ``images/train`` or ``images/val`` by the project's split, its stem made
    unique (ignoring case)."""
    parts = Path(sample.path).parts
    if len(parts) >= 3 and parts[0] == "images" and ".." not in parts:
        path = Path(*parts)
    else:
        path = Path("images", "val" if sample.split == "val" else "train", parts[-1])
    stem, i = path.stem, 1
    while (path.parent / (stem + path.suffix)).as_posix().lower() in taken:
        i += 1
        stem = f"{path.stem}_{i}"
    path = path.parent / (stem + path.suffix)
    taken.add(path.as_posix().lower())
    return path


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int:
    """See the module docstring."""
    import yaml

    if schema.task != "landmarks":
        raise ValueError(f"the YOLO-pose format holds landmarks, not {schema.task}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder (a YOLO-pose export "
                              "makes a new dataset folder)")
    k = schema.n_keypoints
    by_image: dict[Path, list[str]] = defaultdict(list)
    target: dict[Path, Path] = {}  # source image -> path under out
    taken: set[str] = set()
    n = 0
    for sample, label in records:
        src = sample.image_path
        if src not in target:
            target[src] = _place(sample, taken)
        by_image[src].append(label_line(sample, label, k))
        n += 1
    for src, lines in by_image.items():
        img = out / target[src]
        img.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, img)
        lab = label_path(img)
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text("\n".join(lines) + "\n")
    folders = sorted({t.parent.relative_to("images").as_posix() for t in target.values()})
    # "./images/x", not "images/x": the same folder for Ultralytics, and sleap-io's reader
    # finds the labels by replacing "/images" with "/labels" in this text
    train = [f"./images/{f}" for f in folders if f not in ("val", "test")]
    perm = schema.flip_permutation()
    doc: dict[str, Any] = {
        "path": ".",
        "train": (train[0] if len(train) == 1 else train) if train else "./images/val",
        "val": "./images/val" if "val" in folders else (train[0] if train else "./images/train"),
        "kpt_shape": [k, 3],
        "flip_idx": [int(v) for v in perm],
        "names": {0: schema.name or "object"},
        "kpt_names": {0: list(schema.keypoints)},  # Ultralytics' key
        "node_names": list(schema.keypoints),  # sleap-io's (its Ultralytics reader's) key
    }
    if "test" in folders:
        doc["test"] = "./images/test"
    if schema.skeleton:
        doc["skeleton"] = [[int(a), int(b)] for a, b in schema.skeleton]
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return n

