"""Export a project's labels as a dataset, plus a change report beside it.

``export(project, "clean.csv", "csv")`` writes ``clean.csv`` and the report
``clean.changes.csv`` / ``clean.changes.json`` (for a pts folder ``out/``:
``out.changes.csv``). The report lists every sample whose current label differs
from the imported one or whose review status is not ``unreviewed``, with both
labels, who changed it, when and why, and whether the sample was exported.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.formats import get_writer
from core.formats.common import fmt
from core.project import Label, Project, ProjectError, ReviewEvent, Sample

Progress = Callable[[int, str], None]  # (samples written, last key), about 10 calls a second

REPORT_COLUMNS = (
    "key", "path", "review_status", "exported", "dropped_because", "old_label", "new_label",
    "changed_landmarks", "origin", "who", "when", "why", "reviewed_by", "reviewed_at",
    "review_note", "score",
)


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
        text = f"wrote {self.written} samples to {self.out} ({self.format})"
        text += f"; dropped {dropped}" if dropped else ""
        if self.report_csv is not None:
            text += f"; {self.changes} changed or reviewed samples listed in {self.report_csv}"
        return text


def report_paths(out: Path, fmt_name: str) -> tuple[Path, Path]:
    """``clean.csv`` -> ``clean.changes.csv``, ``clean.changes.json``; a pts folder
    ``out`` -> ``out.changes.csv``, ``out.changes.json``."""
    base = Path(out) if fmt_name == "pts" else Path(out).with_suffix("")
    return base.with_name(base.name + ".changes.csv"), base.with_name(base.name + ".changes.json")


def export(project: Project, out: str | Path, fmt: str, *, current: bool = True,
           reviewed_only: bool = False, drop_excluded: bool = True,
           max_score: float | None = None, report: bool = True,
           progress: Progress | None = None) -> ExportResult:
    """Write the project's samples in format ``fmt`` (a ``core.formats.WRITERS`` name).

    current: the current labels (fixes applied); False: the labels as imported.
    reviewed_only: only samples whose review status is not ``unreviewed``.
    drop_excluded: leave out samples reviewed as ``excluded``.
    max_score: leave out samples whose score in the latest scored run is above it
    (ignored while no run has scores; unscored samples are kept).
    report: also write the change report (CSV and JSON) beside ``out``.
    """
    out = Path(out)
    writer = get_writer(fmt)
    schema = project.schema
    if schema is None:
        raise ProjectError(f"{project.path}: no labels to export (no label schema yet)")
    run = project.scored_run()
    # the samples the report may list: edited (several label versions) or reviewed
    candidates = project.edited_sample_ids() | project.reviewed_sample_ids() if report else set()
    score_ids, score_values = (project.score_array(run) if run is not None and max_score is not None
                               else (np.zeros(0, np.int64), np.zeros(0)))

    def score_of(sid: int) -> float | None:
        i = int(np.searchsorted(score_ids, sid))
        return float(score_values[i]) if i < len(score_ids) and score_ids[i] == sid else None

    dropped: Counter[str] = Counter()
    why_dropped: dict[int, str] = {}

    def kept() -> Iterator[tuple[Sample, Label]]:  # streamed: a chunk of samples at a time
        for s, label in project.iter_samples_with_labels(current=current):
            reason = _drop_reason(s, score_of(s.id) if max_score is not None else None,
                                  reviewed_only, drop_excluded, max_score)
            if reason:
                dropped[reason] += 1
                if s.id in candidates:
                    why_dropped[s.id] = reason
            elif label is not None:
                yield s, label
    written = writer(out, schema, _reporting(kept(), progress, project.count_samples()))

    result = ExportResult(out, fmt, written, dict(dropped))
    if not report:
        return result
    ids = sorted(candidates)
    samples = project.samples(ids=ids)
    original, latest = project.original_labels(ids), project.current_labels(ids)
    reviews = project.last_reviews(ids)
    scores = {} if run is None else {k: v.score for k, v in
                                     project.scores(run, ids, columns=("score",)).items()}
    rows = [_report_row(s, original[s.id], latest[s.id], reviews.get(s.id),
                        why_dropped.get(s.id, ""), scores.get(s.id))
            for s in samples
            if s.review_status != "unreviewed" or not _same(original[s.id], latest[s.id])]
    report_csv, report_json = report_paths(out, fmt)
    with report_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, REPORT_COLUMNS)
        w.writeheader()
        w.writerows({k: _cell(r[k]) for k in REPORT_COLUMNS} for r in rows)
    report_json.write_text(json.dumps({
        "export": str(out), "format": fmt, "labels": "current" if current else "imported",
        "filters": {"reviewed_only": reviewed_only, "drop_excluded": drop_excluded,
                    "max_score": max_score, "scored_run": run},
        "written": written, "dropped": dict(dropped), "changes": rows,
    }, indent=1))
    return ExportResult(out, fmt, written, dict(dropped), len(rows), report_csv, report_json)


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
    return str(v)
