"""``gumshoe rank PROJECT``: the samples most likely mislabelled, from the latest scored run."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from core.issues import ISSUE_TEXT
from core.project import Project, ProjectError, ScoreRow
from core.skill import run_warning


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("rank", help="list samples by outlier score (latest scored run)")
    p.add_argument("project", type=Path)
    p.add_argument("--top", type=int, default=20, help="how many (default: %(default)s; 0 = all)")
    p.add_argument("--run", type=int, help="a run id (default: the latest with scores)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _worst_landmarks(row: ScoreRow, names: tuple[str, ...], n: int = 3) -> list[str]:
    scores = row.landmark_scores or ()
    ranked = sorted((s, k) for k, s in enumerate(scores) if s is not None and math.isfinite(s))
    return [names[k] if k < len(names) else str(k) for _, k in reversed(ranked[-n:])]


def run(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        run_id = args.run if args.run is not None else project.scored_run()
        if run_id is None:
            raise ProjectError(f"{args.project}: no run has written scores yet (run `gumshoe train`)")
        the_run = project.run(run_id)
        method = the_run.method
        warning = run_warning(project, the_run) or None  # a model that learnt nothing
        rows = [r for r in project.queue(run_id=run_id, limit=args.top or None)
                if r.score is not None]
        scores = project.scores(run_id, [r.sample_id for r in rows],
                                columns=("landmark_scores", "prediction"))
        names = project.schema.keypoints if project.schema else ()
    items = []
    for r in rows:
        sc = scores[r.sample_id]
        items.append({"sample_id": r.sample_id, "path": r.path, "split": r.split,
                      "review_status": r.review_status, "score": r.score,
                      "outlier_prob": r.outlier_prob, "issue": r.issue,
                      "worst_landmarks": _worst_landmarks(sc, names),
                      "prediction": None if sc.prediction is None else
                      [v if math.isfinite(v) else None for v in sc.prediction]})
    if warning:
        print(f"gumshoe: warning: run {run_id}: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({"project": str(args.project), "run": run_id, "method": method,
                          "warning": warning, "samples": items}))
        return 0
    print(f"run {run_id} ({method}), {len(items)} samples, highest outlier score first")
    for i, it in enumerate(items, 1):
        prob = "" if it["outlier_prob"] is None else f"  P(wrong) {it['outlier_prob']:.3f}"
        prob += f"  likely: {ISSUE_TEXT.get(it['issue'], it['issue'])}" if it["issue"] else ""
        where = f"  worst: {', '.join(it['worst_landmarks'])}" if it["worst_landmarks"] else ""
        print(f"{i:4d}. {it['score']:10.3f}{prob}  [{it['split']}, {it['review_status']}]  "
              f"{it['path']}{where}")
    return 0
