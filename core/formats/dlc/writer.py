"""``gumshoe export --format dlc``: a DeepLabCut project or one table."""

from __future__ import annotations

import datetime
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.formats.base import FormatError
from core.formats.dlc.project import CONFIG, PREFIX, is_collected, load_config
from core.formats.dlc.tables import write_table
from core.project import Label, LabelSchema, Sample

DEFAULT_SCORER = "gumshoe"


def _source_config(sample: Sample) -> dict[str, Any] | None:
    path = Path(sample.root) / CONFIG
    if not path.is_file():
        return None
    try:
        return load_config(path)
    except FormatError:
        return None


def _source_scorer(sample: Sample, cfg: dict[str, Any] | None) -> str:
    if cfg and cfg.get("scorer"):
        return str(cfg["scorer"])
    for p in sorted(sample.image_path.parent.glob(f"{PREFIX}*")):
        if is_collected(p):
            return p.stem[len(PREFIX):]
    return DEFAULT_SCORER


def dlc_path(sample: Sample) -> tuple[str, str, str]:
    """``(labeled-data, video, image name)`` for a sample: its own path when it came
    from a DeepLabCut project, else a video folder named after its image's folder."""
    parts = Path(sample.path).parts
    if len(parts) == 3 and parts[0] == "labeled-data":
        return parts[0], parts[1], parts[2]
    if Path(sample.path).is_absolute() or ".." in parts:  # an image outside its source root
        parts = sample.image_path.parts[-2:]
    video = "-".join(parts[:-1]) or Path(sample.root).name or "images"
    return "labeled-data", video, parts[-1]


def _individuals(records: list[tuple[Sample, Label]], cfg: dict[str, Any] | None
                 ) -> tuple[list[str], list[str | None]]:
    """The individuals' names and each record's (None for single-animal data)."""
    per_image: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for n, (s, _) in enumerate(records):
        per_image[dlc_path(s)].append(n)
    if all(len(v) == 1 for v in per_image.values()) and not (cfg or {}).get("multianimalproject"):
        return [], [None] * len(records)
    named = {str(i) for i in (cfg or {}).get("individuals") or [] if isinstance(i, str | int)}
    names: list[str | None] = [None] * len(records)
    for ns in per_image.values():
        suffixes = [records[n][0].key.rpartition("#")[2] for n in ns]
        use = named and all(s in named for s in suffixes) and len(set(suffixes)) == len(ns)
        for pos, n in enumerate(ns):
            names[n] = suffixes[pos] if use else f"individual{pos + 1}"
    order = [str(i) for i in (cfg or {}).get("individuals") or [] if isinstance(i, str | int)]
    order += sorted({n for n in names if n is not None} - set(order),
                    key=lambda s: (len(s), s))
    used = {n for n in names if n is not None}
    return [n for n in order if n in used], names


def frame(records: list[tuple[Sample, Label]], schema: LabelSchema, scorer: str,
          individuals: list[str], names: list[str | None]) -> Any:
    """The DataFrame DeepLabCut keeps: MultiIndex columns (scorer, [individuals,]
    bodyparts, coords), an index of image paths ``labeled-data/video/img.png``."""
    import pandas as pd

    k = schema.n_keypoints
    paths = list(dict.fromkeys("/".join(dlc_path(s)) for s, _ in records))
    row_of = {p: i for i, p in enumerate(paths)}
    slots = max(1, len(individuals))
    data = np.full((len(paths), slots * k * 2), np.nan)
    for (s, label), ind in zip(records, names, strict=True):
        pts = np.asarray(label.points, dtype=np.float64).reshape(k, 2)
        if label.visibility is not None:
            pts = np.where(np.asarray(label.visibility)[:, None] > 0, pts, np.nan)
        j = 0 if ind is None else individuals.index(ind) * k * 2
        data[row_of["/".join(dlc_path(s))], j:j + 2 * k] = pts.reshape(-1)
    if individuals:
        columns = pd.MultiIndex.from_product(
            [[scorer], individuals, list(schema.keypoints), ["x", "y"]],
            names=["scorer", "individuals", "bodyparts", "coords"])
    else:
        columns = pd.MultiIndex.from_product([[scorer], list(schema.keypoints), ["x", "y"]],
                                             names=["scorer", "bodyparts", "coords"])
    return pd.DataFrame(data, index=pd.Index(paths, dtype=object), columns=columns)



def _config_out(cfg: dict[str, Any] | None, schema: LabelSchema, scorer: str, out: Path,
                individuals: list[str]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Task": schema.name or "gumshoe", "scorer": scorer,
        "date": datetime.date.today().strftime("%b%d"), "multianimalproject": False,
        "identity": None, "project_path": str(out.resolve()), "video_sets": {},
        "bodyparts": [], "start": 0, "stop": 1, "numframes2pick": 20, "skeleton": [],
        "skeleton_color": "black", "pcutoff": 0.6, "dotsize": 12, "alphavalue": 0.7,
        "colormap": "rainbow", "TrainingFraction": [0.95], "iteration": 0,
        "default_net_type": "resnet_50", "snapshotindex": -1, "batch_size": 8,
        "cropping": False, "x1": 0, "x2": 640, "y1": 277, "y2": 624,
        "corner2move2": [50, 50], "move2corner": True,
    }
    cfg = {**base, **(cfg or {})}
    cfg["scorer"] = scorer
    cfg["project_path"] = str(out.resolve())
    names = list(schema.keypoints)
    cfg["skeleton"] = [[names[a], names[b]] for a, b in schema.skeleton]
    if individuals:
        cfg.update(multianimalproject=True, individuals=individuals,
                   multianimalbodyparts=names, bodyparts="MULTI!")
        cfg.setdefault("uniquebodyparts", [])
    else:
        cfg["bodyparts"] = names
    return cfg


def write(out: Path, schema: LabelSchema, records: Iterable[tuple[Sample, Label]], *,
          final: Path | None = None) -> int:
    """See the module docstring. Samples sharing an image become individuals of a
    multi-animal table (named as in the source project, else ``individual1``...).
    ``final``: where the project folder ``out`` will be moved once written (the config's
    ``project_path``); ``out`` itself by default."""
    import yaml

    if schema.task != "landmarks":
        raise ValueError(f"the DeepLabCut format holds landmarks, not {schema.task}")
    out = Path(out)
    records = list(records)
    cfg = _source_config(records[0][0]) if records else None
    scorer = _source_scorer(records[0][0], cfg) if records else DEFAULT_SCORER
    if not re.fullmatch(r"[^/\\\x00]+", scorer):
        scorer = DEFAULT_SCORER
    individuals, names = _individuals(records, cfg)
    if out.suffix.lower() in (".h5", ".csv"):
        twins = [out.with_suffix(".h5"), out.with_suffix(".csv")]
        for p in twins:
            if p != out and p.exists():
                raise FileExistsError(f"{p}: exists (a DeepLabCut export writes {out.name} "
                                      f"and {p.name})")
        out.parent.mkdir(parents=True, exist_ok=True)
        df = frame(records, schema, scorer, individuals, names)
        for p in twins:
            write_table(df, p)
        return len(records)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder (a DeepLabCut "
                              "export makes a new project folder)")
    by_video: dict[str, list[int]] = defaultdict(list)
    for n, (s, _) in enumerate(records):
        by_video[dlc_path(s)[1]].append(n)
    out.mkdir(parents=True, exist_ok=True)
    for video, ns in by_video.items():
        folder = out / "labeled-data" / video
        folder.mkdir(parents=True, exist_ok=True)
        for n in ns:
            s = records[n][0]
            target = folder / dlc_path(s)[2]
            if not target.exists():
                shutil.copy2(s.image_path, target)
        part = [records[n] for n in ns]
        df = frame(part, schema, scorer, individuals, [names[n] for n in ns])
        for suffix in (".h5", ".csv"):
            write_table(df, folder / f"{PREFIX}{scorer}{suffix}")
    config = _config_out(cfg, schema, scorer, Path(final) if final is not None else out,
                         individuals)
    (out / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    return len(records)
