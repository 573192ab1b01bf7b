"""``gumshoe rank PROJECT``: the samples most likely mislabelled, from the latest scored run."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from core.project import Project, ProjectError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("rank", help="list samples by outlier score (latest scored run)")
    p.add_argument("project", type=Path)
    p.add_argument("--top", type=int, default=20, help="how many (default: %(default)s; 0 = all)")
    p.add_argument("--run", type=int, help="a run id (default: the latest with scores)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _worst_landmarks(row: dict, names: tuple[str, ...], n: int = 3) -> list[str]:
    scores = row.get("landmark_scores") or []
    ranked = sorted((s, k) for k, s in enumerate(scores) if s is not None and math.isfinite(s))
    return [names[k] if k < len(names) else str(k) for _, k in reversed(ranked[-n:])]


def run(args: argparse.Namespace) -> int:
    with Project.open(args.project) as project:
        run_id = args.run if args.run is not None else project.scored_run()
        if run_id is None:
            raise ProjectError(f"{args.project}: no run has written scores yet (run `gumshoe train`)")
        method = project.run(run_id)["method"]
        rows = project.queue(run_id=run_id, limit=args.top or None)
        scores = project.scores(run_id)
        names = project.schema.keypoints if project.schema else ()
    items = []
    for sid, path, split, status, score, prob in rows:
        if score is None:
            continue
        row = scores[sid]
        items.append({"sample_id": sid, "path": path, "split": split, "review_status": status,
                      "score": score, "outlier_prob": prob,
                      "worst_landmarks": _worst_landmarks(row, names),
                      "prediction": row["prediction"]})
    if args.json:
        print(json.dumps({"project": str(args.project), "run": run_id, "method": method,
                          "samples": items}))
        return 0
    print(f"run {run_id} ({method}), {len(items)} samples, highest outlier score first")
    for i, it in enumerate(items, 1):
        prob = "" if it["outlier_prob"] is None else f"  p(outlier) {it['outlier_prob']:.3f}"
        where = f"  worst: {', '.join(it['worst_landmarks'])}" if it["worst_landmarks"] else ""
        print(f"{i:4d}. {it['score']:10.3f}{prob}  [{it['split']}, {it['review_status']}]  "
              f"{it['path']}{where}")
    return 0
