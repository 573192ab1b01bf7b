"""SLEAP label files (``.slp``, ``.pkg.slp``) through sleap-io, SLEAP's maintained reader.

Reading: only user-labelled instances (``Instance``), never predictions
(``PredictedInstance``): those are a model's output, not labels. Each user instance
is one sample, keyed ``<video>/<frame index>`` (``#n`` for the n-th instance of a
frame that has several), where ``<video>`` is the stem of the video file (of the
original video for frames embedded in a ``.pkg.slp``). The schema is the skeleton
most instances use: its nodes, its edges and, as flip pairs, its symmetries (the
pairs are inferred from the node names when it has none). A node that is not
visible is a missing point.

Frames: the editor and the image cache need image files, so every labelled frame is
decoded once, through sleap-io, from the images embedded in the file or from the
video, and written losslessly as PNG into the project's cache folder
(``NAME.gumshoe-cache/frames/<slp stem>-<hash>/<video>/<frame>.png``, with a
``frames.json`` that records where each video came from). A frame already there is
not decoded again; if the folder is deleted, importing the same ``.slp`` again writes
it back. Video decoding goes through sleap-io's ``opencv`` backend, which it picks
because ``cv2`` is importable: opencv-python-headless, already Gumshoe's image
decoder, ships FFmpeg (H.264, MPEG-4, ...). sleap-io's ``opencv`` extra is not used: it
installs opencv-python, the GUI build, whose ``cv2`` would clash with the headless one
and bring its own Qt. Video paths in a ``.slp`` are absolute, as SLEAP writes them; a
video that is not there is looked for beside the ``.slp`` by its file name.

Writing (:func:`write`): a ``.slp`` whose user instances are the exported labels
(fixes included), on the skeleton of the schema (nodes, edges, symmetries from the
flip pairs). Frames that came from a ``.slp`` point at the same video and frame index
as the source (embedded frames are embedded again from the source file); other
images are referenced as SLEAP image-sequence videos, one per image folder (so are the
extracted frames of a ``.pkg.slp`` that is no longer there). Predictions of the
source are not carried over.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError, RawItem, Skip
from core.formats.guard import check_regular
from core.project import Label, LabelSchema, Sample
from core.schemas import schema_for_keypoints

SLP_LIMIT = 1 << 40  # .pkg.slp files hold every frame; h5py reads them piecewise
MANIFEST = "frames.json"


def _quiet_load(path: Path) -> Any:
    import warnings

    import sleap_io as sio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sio.load_slp(str(path))


@lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int, size: int) -> Any:
    return _quiet_load(Path(path))


def load(path: Path) -> Any:
    """The sleap-io ``Labels`` of ``path``; FormatError naming the file otherwise."""
    path = Path(path)
    try:
        check_regular(path, SLP_LIMIT)
        st = path.stat()
        return _load(str(path.resolve()), st.st_mtime_ns, st.st_size)
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except Exception as exc:  # h5py, sleap-io and attrs raise many kinds
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise FormatError(f"{path}: not a readable SLEAP file ({type(exc).__name__}: "
                          f"{first})") from None


def _is_user(inst: Any) -> bool:
    import sleap_io as sio

    return isinstance(inst, sio.Instance) and not isinstance(inst, sio.PredictedInstance)


def _skeleton(labels: Any, source: Path) -> Any:
    """The skeleton most user instances use (the first skeleton when none has any)."""
    counts: Counter[int] = Counter()
    for lf in labels.labeled_frames:
        for inst in lf.instances:
            if _is_user(inst):
                counts[id(inst.skeleton)] += 1
    by_id = {id(s): s for s in labels.skeletons}
    if counts:
        return by_id.get(counts.most_common(1)[0][0], labels.skeletons[0])
    if not labels.skeletons:
        raise FormatError(f"{source}: no skeleton")
    return labels.skeletons[0]


def schema_of(labels: Any, source: Path) -> LabelSchema:
    sk = _skeleton(labels, source)
    pairs = [tuple(p) for p in sk.symmetry_inds] if sk.symmetries else None
    try:
        return schema_for_keypoints(sk.node_names, [tuple(e) for e in sk.edge_inds],
                                    name=sk.name or "sleap", flip_pairs=pairs)
    except ValueError as exc:
        raise FormatError(f"{source}: skeleton {sk.name!r}: {exc}") from None


def _video_file(video: Any) -> str:
    """The file a video's frames come from originally (the source of embedded ones)."""
    v = video.original_video or video
    name = v.filename
    return str(name[0] if isinstance(name, list) else name)


def video_tags(labels: Any) -> list[str]:
    """A folder name per video: its file stem, made unique with the video's index."""
    stems = [Path(_video_file(v)).name.split(".")[0] or "video" for v in labels.videos]
    counts = Counter(stems)
    return [s if counts[s] == 1 else f"{s}-{i}" for i, s in enumerate(stems)]


def _embedded(video: Any) -> bool:
    return bool(getattr(video.backend, "has_embedded_images", False))


def frames_root(source: Path, frames_dir: Path | None) -> Path:
    if frames_dir is None:
        raise FormatError(f"{source}: the slp reader writes frames and needs a folder for "
                          "them (an import gives the project's cache folder)")
    digest = hashlib.blake2b(str(Path(source).resolve()).encode(), digest_size=4).hexdigest()
    return Path(frames_dir) / f"{Path(source).name.split('.')[0]}-{digest}"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _png(frame: np.ndarray) -> bytes:
    import cv2

    img = np.asarray(frame)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    elif img.ndim == 3 and img.shape[2] >= 3:
        img = np.ascontiguousarray(img[:, :, 2::-1])  # RGB -> BGR for OpenCV
    if img.dtype != np.uint8:
        raise ValueError(f"frame is {img.dtype}, not 8-bit")
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("frame cannot be encoded as PNG")
    return buf.tobytes()


def _reachable(video: Any, source: Path) -> bool:
    """Whether the video's frames can be read, looking beside the .slp by file name."""
    if _embedded(video):
        return True
    name = video.filename
    if isinstance(name, list):
        return all(Path(f).is_file() for f in name)
    if Path(name).is_file():
        return True
    beside = Path(source).parent / Path(str(name).replace("\\", "/")).name
    if beside.is_file():
        video.replace_filename(str(beside))
        return True
    return False


class SlpReader:
    name = "slp"
    tasks = ("landmarks",)
    writes_frames = True  # the importer passes frames_dir (the project's cache folder)

    def root(self, source: Path, frames_dir: Path | None = None) -> Path:
        return frames_root(source, frames_dir)

    def sniff(self, source: Path) -> bool:
        source = Path(source)
        if not (source.is_file() and source.suffix.lower() == ".slp"):
            return False
        with source.open("rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"

    def schema(self, source: Path, task: str) -> LabelSchema:
        if task != "landmarks":
            raise FormatError(f"{source}: SLEAP instances are landmarks, not {task!r}")
        return schema_of(load(Path(source)), Path(source))

    def read(self, source: Path, task: str, frames_dir: Path | None = None
             ) -> Iterator[RawItem | Skip]:
        source = Path(source)
        labels = load(source)
        schema = self.schema(source, task)
        skeleton = _skeleton(labels, source)
        out = frames_root(source, frames_dir)
        tags = video_tags(labels)
        index_of = {id(v): i for i, v in enumerate(labels.videos)}
        manifest = {"source": str(source.resolve()), "videos": {
            tags[i]: {"index": i, "filename": _video_file(v), "embedded": _embedded(v)}
            for i, v in enumerate(labels.videos)}}
        text = json.dumps(manifest, indent=1).encode()
        if not (out / MANIFEST).is_file() or (out / MANIFEST).read_bytes() != text:
            _atomic_write(out / MANIFEST, text)
        unreachable: Counter[int] = Counter()
        frames = sorted(labels.labeled_frames,
                        key=lambda lf: (index_of.get(id(lf.video), -1), lf.frame_idx))
        for lf in frames:
            users = [inst for inst in lf.instances if _is_user(inst)]
            if not users:
                continue  # predictions only
            vi = index_of.get(id(lf.video), 0)
            tag = tags[vi]
            image = out / tag / f"{int(lf.frame_idx):06d}.png"
            if not image.is_file():
                if not _reachable(lf.video, source):
                    unreachable[vi] += 1
                    continue
                try:
                    _atomic_write(image, _png(lf.image))
                except Exception as exc:  # decoders raise many kinds
                    yield Skip(f"{tag}/{lf.frame_idx}", "frame cannot be read "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:100]})"
                               if str(exc) else f"frame cannot be read ({type(exc).__name__})")
                    continue
            for n, inst in enumerate(users):
                key = f"{tag}/{lf.frame_idx}" + (f"#{n}" if len(users) > 1 else "")
                if inst.skeleton is not skeleton and \
                        list(inst.skeleton.node_names) != list(schema.keypoints):
                    yield Skip(key, f"instance of skeleton {inst.skeleton.name!r}, not "
                               f"{skeleton.name!r}")
                    continue
                pts = np.asarray(inst.numpy(), dtype=np.float64).reshape(-1, 2)
                present = np.isfinite(pts).all(axis=1)
                if not present.any():
                    yield Skip(key, "no visible point")
                    continue
                pts[~present] = np.nan
                yield RawItem(key, image, pts, np.where(present, 2, 0).astype(np.int8))
        for vi, n in unreachable.items():
            yield Skip(_video_file(labels.videos[vi]),
                       f"video not found (also not beside the .slp): {n} labelled frames "
                       "left out")


# ----------------------------------------------------------------------------- writer


@lru_cache(maxsize=8)
def _manifest(root: str) -> dict[str, Any] | None:
    path = Path(root) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("videos"), dict) else None


def _origin(sample: Sample) -> tuple[dict[str, Any], dict[str, Any], int] | None:
    """(manifest, video entry, frame index) for a sample imported from a .slp."""
    doc = _manifest(sample.root)
    parts = Path(sample.path).parts
    if doc is None or len(parts) != 2 or not parts[1].endswith(".png"):
        return None
    entry = doc["videos"].get(parts[0])
    stem = parts[1][:-4]
    if not isinstance(entry, dict) or not stem.isdecimal():
        return None
    return doc, entry, int(stem)


def _source_video(doc: dict[str, Any], entry: dict[str, Any]) -> Any | None:
    """The source file's own Video object, if the source .slp is still there."""
    src = Path(str(doc.get("source", "")))
    try:
        labels = load(src)
        return labels.videos[int(entry["index"])]
    except (FormatError, IndexError, KeyError, ValueError, TypeError):
        return None


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]]) -> int:
    """See the module docstring."""
    import sleap_io as sio

    if schema.task != "landmarks":
        raise ValueError(f"the SLEAP format holds landmarks, not {schema.task}")
    out = Path(out)
    if out.suffix.lower() != ".slp":
        raise ValueError(f"{out}: a SLEAP export is a .slp file")
    if out.exists():
        raise FileExistsError(f"{out}: exists")
    names = list(schema.keypoints)
    skeleton = sio.Skeleton(  # a copy of the names: sleap-io turns the list into Nodes
        list(names), edges=[(names[a], names[b]) for a, b in schema.skeleton],
        symmetries=[(names[a], names[b]) for a, b in schema.flip_pairs],
        name=schema.name or "gumshoe")
    videos: dict[Any, Any] = {}
    frames: dict[tuple[Any, int], list[Any]] = defaultdict(list)
    embed: list[tuple[Any, int]] = []
    loose: dict[Path, list[tuple[Path, Any]]] = defaultdict(list)  # folder -> (image, inst)
    n = 0
    for sample, label in records:
        pts = np.asarray(label.points, dtype=np.float64).reshape(len(names), 2).copy()
        if label.visibility is not None:
            pts[np.asarray(label.visibility) == 0] = np.nan
        inst = sio.Instance.from_numpy(pts, skeleton=skeleton)
        n += 1
        origin = _origin(sample)
        video = None
        if origin is not None:
            doc, entry, frame_idx = origin
            key = (doc.get("source"), entry.get("index"))
            if key not in videos:
                videos[key] = _source_video(doc, entry) or (
                    None if entry.get("embedded") else
                    sio.Video(filename=str(entry.get("filename")), open_backend=False))
            video = videos[key]
            if video is not None:
                frames[(video, frame_idx)].append(inst)
                if entry.get("embedded") and (video, frame_idx) not in embed:
                    embed.append((video, frame_idx))
                continue
        loose[sample.image_path.parent].append((sample.image_path, inst))
    for _folder, items in sorted(loose.items()):
        files = sorted({str(p) for p, _ in items})
        video = sio.Video.from_filename(files)
        for p, inst in items:
            frames[(video, files.index(str(p)))].append(inst)
    lfs = [sio.LabeledFrame(video=v, frame_idx=int(i), instances=insts)
           for (v, i), insts in frames.items()]
    labels = sio.Labels(lfs, skeletons=[skeleton])
    out.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save_slp(labels, str(out), embed=embed or False, verbose=False)
    return n
