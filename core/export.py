"""Export a project's labels as a dataset, plus a change report beside it.

``export(project, "clean.csv", "csv")`` writes ``clean.csv`` and the report
``clean.changes.csv`` / ``clean.changes.json`` (for a pts folder ``out/``:
``out.changes.csv``). The report lists every sample whose current label differs
from the imported one or whose review status is not ``unreviewed``, with both
labels, who changed it, when and why, and whether the sample was exported.

Safety (see :mod:`core.export_target`): the project, its SQLite files and cache are
never written over; an existing file or non-empty folder only with
``overwrite=True``. Everything is written under temporary names in the same folder
and renamed into place at the end, the report first and the export last, so an
export that is there is complete and its report is its own. A pts export copies
only regular image files that lie inside their source folder and still hold the
bytes that were imported (the others are left out, with the reason in the report).
Every CSV cell that a spreadsheet would run as a formula is neutralised
(:func:`core.formats.common.csv_safe`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.export_target import Staging, check_target, orphan_reports
from core.formats import get_writer
from core.formats.common import csv_safe, fmt
from core.images import content_hash, looks_like_image
from core.paths import IMAGE_LIMIT, ReadError, is_inside, read_regular, shown
from core.project import Label, Project, ProjectError, ReviewEvent, Sample

Progress = Callable[[int, str], None]  # (samples written, last key), about 10 calls a second

REPORT_COLUMNS = (
    "key", "path", "review_status", "exported", "dropped_because", "old_label", "new_label",
    "changed_landmarks", "origin", "who", "when", "why", "reviewed_by", "reviewed_at",
    "review_note", "score",
)
FOLDER_FORMATS = ("pts",)  # writers that make a folder and copy the images into it
IMAGE_REASONS = ("image missing", "image changed", "image outside its source folder",
                 "not an image file")


@dataclass(frozen=True)
class ExportResult:
    out: Path
    format: str
    written: int
    dropped: dict[str, int] = field(default_factory=dict)  # excluded / unreviewed / score
    changes: int = 0  # rows in the change report
    report_csv: Path | None = None
    report_json: Path | None = None

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n)
        text = f"wrote {self.written} samples to {shown(self.out)} ({self.format})"
        text += f"; dropped {dropped}" if dropped else ""
        if self.report_csv is not None:
            text += (f"; {self.changes} changed or reviewed samples listed in "
                     f"{shown(self.report_csv)}")
        return text


def report_paths(out: Path, fmt_name: str) -> tuple[Path, Path]:
    """``clean.csv`` -> ``clean.changes.csv``, ``clean.changes.json``; a pts folder
    ``out`` -> ``out.changes.csv``, ``out.changes.json``."""
    base = Path(out) if fmt_name == "pts" else Path(out).with_suffix("")
    return base.with_name(base.name + ".changes.csv"), base.with_name(base.name + ".changes.json")


def export(project: Project, out: str | Path, fmt: str, *, current: bool = True,
           reviewed_only: bool = False, drop_excluded: bool = True,
           max_score: float | None = None, report: bool = True, overwrite: bool = False,
           progress: Progress | None = None) -> ExportResult:
    """Write the project's samples in format ``fmt`` (a ``core.formats.WRITERS`` name).

    current: the current labels (fixes applied); False: the labels as imported.
    reviewed_only: only samples whose review status is not ``unreviewed``.
    drop_excluded: leave out samples reviewed as ``excluded``.
    max_score: leave out samples whose score in the latest scored run is above it
    (ignored while no run has scores; unscored samples are kept).
    report: also write the change report (CSV and JSON) beside ``out``.
    overwrite: replace an existing export (file, or a folder holding a pts export)
    and its report; never the project. Raises
    :class:`~core.export_target.ExportTargetError` before any work otherwise.
    """
    out = Path(out)
    writer = get_writer(fmt)
    schema = project.schema
    if schema is None:
        raise ProjectError(f"{project.path}: no labels to export (no label schema yet)")
    report_csv, report_json = report_paths(out, fmt)
    reports = [report_csv, report_json]
    sources = project.sources()
    preflight(project, out, fmt, overwrite=overwrite)
    run = project.scored_run()
    # the samples the report may list: edited (several label versions) or reviewed, and
    # those an image problem leaves out of a folder export
    candidates = project.edited_sample_ids() | project.reviewed_sample_ids() if report else set()
    score_ids, score_values = (project.score_array(run) if run is not None and max_score is not None
                               else (np.zeros(0, np.int64), np.zeros(0)))
    outside_ok = {s.id for s in sources if s.options.get("allow_outside_root")}

    def score_of(sid: int) -> float | None:
        i = int(np.searchsorted(score_ids, sid))
        return float(score_values[i]) if i < len(score_ids) and score_ids[i] == sid else None

    dropped: Counter[str] = Counter()
    why_dropped: dict[int, str] = {}

    def kept() -> Iterator[tuple[Sample, Label]]:  # streamed: a chunk of samples at a time
        for s, label in project.iter_samples_with_labels(current=current):
            reason = _drop_reason(s, score_of(s.id) if max_score is not None else None,
                                  reviewed_only, drop_excluded, max_score)
            if not reason and fmt in FOLDER_FORMATS:
                reason = _copy_problem(s, s.source_id in outside_ok)
            if reason:
                dropped[reason] += 1
                if s.id in candidates or reason in IMAGE_REASONS:
                    why_dropped[s.id] = reason
            elif label is not None:
                yield s, label

    outputs = [out, *reports] if report else [out]
    obsolete = [] if report else [r for r in reports if os.path.lexists(r)]
    with Staging(outputs, obsolete) as stage:
        written = writer(stage.temp(out), schema,
                         _reporting(kept(), progress, project.count_samples()))
        rows: list[dict[str, Any]] = []
        if report:
            ids = sorted(candidates | {i for i, r in why_dropped.items() if r in IMAGE_REASONS})
            samples = project.samples(ids=ids)
            original, latest = project.original_labels(ids), project.current_labels(ids)
            reviews = project.last_reviews(ids)
            scores = {} if run is None else {k: v.score for k, v in
                                             project.scores(run, ids, columns=("score",)).items()}
            rows = [_report_row(s, original[s.id], latest[s.id], reviews.get(s.id),
                                why_dropped.get(s.id, ""), scores.get(s.id))
                    for s in samples
                    if s.review_status != "unreviewed" or why_dropped.get(s.id) in IMAGE_REASONS
                    or not _same(original[s.id], latest[s.id])]
            with stage.temp(report_csv).open("w", newline="") as f:
                w = csv.DictWriter(f, REPORT_COLUMNS)
                w.writeheader()
                w.writerows({k: _cell(r[k]) for k in REPORT_COLUMNS} for r in rows)
            stage.temp(report_json).write_text(json.dumps({
                "export": str(out), "format": fmt,
                "labels": "current" if current else "imported",
                "filters": {"reviewed_only": reviewed_only, "drop_excluded": drop_excluded,
                            "max_score": max_score, "scored_run": run},
                "written": written, "dropped": dict(dropped),
                "export_sha256": None if fmt in FOLDER_FORMATS else _sha256(stage.temp(out)),
                "changes": rows,
            }, indent=1))
        stage.commit()
    if not report:
        return ExportResult(out, fmt, written, dict(dropped))
    return ExportResult(out, fmt, written, dict(dropped), len(rows), report_csv, report_json)


def preflight(project: Project, out: str | Path, fmt: str, *,
              overwrite: bool = False) -> list[Path]:
    """What an export to ``out`` would replace (the export and report files that exist;
    empty for a new place). Raises :class:`~core.export_target.ExportTargetError` for a
    place it must never write (the project, its files, its cache, a folder holding
    them or a dataset), or, unless ``overwrite``, for one that holds something. A few
    file-system calls: cheap enough for the GUI thread."""
    out = Path(out)
    get_writer(fmt)
    reports = list(report_paths(out, fmt))
    return check_target(project.path, project.cache_dir, [s.root for s in project.sources()],
                        out, reports, folder=fmt in FOLDER_FORMATS, overwrite=overwrite,
                        orphan_reports=orphan_reports(out, reports,
                                                      lambda p: _is_report(p, out)))


def _copy_problem(s: Sample, outside_ok: bool) -> str:
    """Why a sample's image must not be copied into a folder export, or ''."""
    if not outside_ok and not is_inside(s.root, s.path):
        return "image outside its source folder"
    try:
        data = read_regular(s.image_path, IMAGE_LIMIT)
    except ReadError as exc:
        return "image missing" if exc.missing else "not an image file"
    if not looks_like_image(data):
        return "not an image file"
    if s.content_hash and content_hash(data) != s.content_hash:
        return "image changed"
    return ""


def _is_report(path: Path, out: Path) -> bool:
    """Whether ``path`` is a change report this module wrote for ``out``."""
    try:
        if path.suffix == ".json":
            return json.loads(read_regular(path, 1 << 30)).get("export") == str(out)
        head = read_regular(path, 1 << 30)[:4096].decode("utf-8", "replace")
        return head.splitlines()[0] == ",".join(REPORT_COLUMNS) if head else False
    except (ReadError, ValueError, AttributeError):
        return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _drop_reason(s: Sample, score: float | None, reviewed_only: bool, drop_excluded: bool,
                 max_score: float | None) -> str:
    if drop_excluded and s.review_status == "excluded":
        return "excluded"
    if reviewed_only and s.review_status == "unreviewed":
        return "unreviewed"
    if max_score is not None and score is not None and score > max_score:
        return "score"
    return ""


def _reporting(records: Iterable[tuple[Sample, Label]], progress: Progress | None,
               total: int) -> Iterator[tuple[Sample, Label]]:
    last = 0.0
    key = ""
    i = 0
    for i, r in enumerate(records, 1):
        yield r
        key = r[0].key
        now = time.monotonic()
        if progress is not None and (now - last >= 0.1 or i == total):
            progress(i, key)
            last = now
    if progress is not None and i and i != total:
        progress(i, key)


def changed_landmarks(old: Label, new: Label) -> list[int]:
    """Indices of landmarks whose position, presence or visibility differ."""
    if old.points is None or new.points is None or old.points.shape != new.points.shape:
        return []
    a, b = old.points, new.points
    moved = ~(np.isclose(a, b, rtol=0, atol=1e-6) | (np.isnan(a) & np.isnan(b))).all(axis=1)
    if old.visibility is not None and new.visibility is not None:
        moved |= np.asarray(old.visibility) != np.asarray(new.visibility)
    return [int(i) for i in np.flatnonzero(moved)]


def _same(old: Label, new: Label) -> bool:
    if old.id == new.id:
        return True
    if (old.points is None) != (new.points is None) or (old.age is None) != (new.age is None):
        return False
    if old.age is not None and not math.isclose(old.age, new.age, abs_tol=1e-9):
        return False
    return old.points is None or (old.points.shape == new.points.shape
                                  and not changed_landmarks(old, new))


def _label_value(label: Label) -> Any:
    if label.points is None:
        return label.age
    return [None if not np.isfinite(p).all() else [float(p[0]), float(p[1])]
            for p in label.points]


def _report_row(s: Sample, old: Label, new: Label, last: ReviewEvent | None, dropped: str,
                score: float | None) -> dict[str, Any]:
    changed = old.id != new.id
    return {
        "key": s.key, "path": s.path, "review_status": s.review_status,
        "exported": not dropped, "dropped_because": dropped,
        "old_label": _label_value(old), "new_label": _label_value(new),
        "changed_landmarks": changed_landmarks(old, new),
        "origin": new.origin, "who": new.author if changed else "",
        "when": new.created_at if changed else "", "why": new.note if changed else "",
        "reviewed_by": last.author if last else "", "reviewed_at": last.created_at if last else "",
        "review_note": last.note if last else "", "score": score,
    }


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return fmt(v)
    if isinstance(v, list):
        return " ".join(map(str, v)) if all(isinstance(x, int) for x in v) else json.dumps(v)
    return csv_safe(str(v))
