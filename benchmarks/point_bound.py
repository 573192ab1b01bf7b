"""How far a per-landmark flag can go on Gaussian-displacement noise (ngo): for
projects trained by ``gumshoe bench --workdir`` on an ngo protocol, how far each
displaced point moved in its own predicted standard deviations, and the best
precision/recall trade any threshold on a per-point statistic reaches.

A displaced point is drawn ``N(0, (0.1 * image size)^2)`` per axis, so about one
in ten moves less than 0.046 of the image (``P(|d| < r) = 1 - exp(-r^2 / 2s^2)``):
recall 0.9 means flagging those. Where they sit inside the spread of the
network's own residuals on clean points, no threshold on the residual tells them
apart and recall 0.9 costs precision, whatever turns the residual into a
probability.

Statistics (training samples, observed points): ``score`` (the point log-odds
stored by the engine that scored the run), ``z`` (the residual over the point's predicted standard deviation).
For each: AUROC, precision and recall at the default flag (``score`` only:
probability over one half), the best precision at recall >= 0.9 and the best
recall at precision >= 0.9 over all thresholds.

Usage:
  gumshoe bench ../shared/datasets/fgnet --format fgnet --task landmarks \\
      --noise ngo:0.1 --noise ngo:0.3 --methods deepgum --seeds 3 --workdir WD --json X
  python benchmarks/point_bound.py WD/ngo-0.1-seed*.gumshoe WD/ngo-0.3-seed*.gumshoe --json OUT
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from workdir_analysis import imported_points, run  # also puts the repository on the path

TARGET = 0.9
SIGMAS = (2.0, 3.0, 4.0)


def frontier(y: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    """Over every threshold on ``s``: the best precision with recall >= TARGET and
    the best recall with precision >= TARGET (None where none reaches it), and AUROC."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    flagged = np.arange(1, len(ys) + 1)
    cut = np.r_[ss[1:] != ss[:-1], True]  # a threshold cannot split tied scores
    precision, recall = (tp / flagged)[cut], (tp / max(int(y.sum()), 1))[cut]
    at_recall = precision[recall >= TARGET]
    at_precision = recall[precision >= TARGET]
    from core.metrics import auroc
    return {"auroc": auroc(s, y),
            "best_precision_at_recall_0.9": float(at_recall.max()) if len(at_recall) else None,
            "best_recall_at_precision_0.9": float(at_precision.max()) if len(at_precision) else None}


def analyse(path: Path) -> dict[str, Any]:
    from core.project import Project

    with Project.open(path) as p:
        run = p.runs()[-1]
        scores, truth, labels = p.scores(run.id), p.contamination(), p.current_labels()
        y, score, prob, z, moved_sigmas, moved_share = [], [], [], [], [], []
        for s in p.samples(split="train", include_excluded=False):
            r = scores.get(s.id)
            if r is None or r.prediction is None or r.prediction_std is None \
                    or r.landmark_scores is None or len(r.prediction_std) != len(r.landmark_scores):
                continue  # a method without a scale head keeps a spread per dimension
            label = labels[s.id].points
            std = np.asarray(r.prediction_std, np.float64)
            zz = np.linalg.norm(label - np.asarray(r.prediction).reshape(-1, 2), axis=1) / std
            bad = set(truth.get(s.id, (False, []))[1])
            if bad:
                original = imported_points(p, s.id)
                size = float(max(s.width, s.height))
                for k in bad:
                    d = float(np.linalg.norm(label[k] - original[k]))
                    if np.isfinite(d):
                        moved_sigmas.append(d / std[k])
                        moved_share.append(d / size)
            for k, v in enumerate(r.landmark_scores):
                if v is None or not np.isfinite(v) or not np.isfinite(zz[k]):
                    continue
                y.append(k in bad)
                score.append(v)
                prob.append(r.landmark_probs[k])
                z.append(zz[k])
    yy, ss, pp = np.array(y), np.array(score), np.array(prob)
    flag = pp > 0.5
    ms = np.array(moved_sigmas)
    return {
        "project": path.name, "points": len(yy), "displaced": int(yy.sum()),
        "default_flag": {"precision": float(yy[flag].mean()) if flag.any() else None,
                         "recall": float(flag[yy].mean()) if yy.any() else None},
        "score": frontier(yy, ss), "z": frontier(yy, np.array(z)),
        "displaced_moved_below_sigmas": {f"{k:g}": float((ms < k).mean()) for k in SIGMAS},
        "displacement_share_of_image_median": float(np.median(moved_share)),
        "clean_points_per_displaced": float((~yy).sum() / max(int(yy.sum()), 1)),
    }


def main() -> None:
    run(__doc__, "per-landmark detection bound on Gaussian displacements", analyse,
        lambda r: " ".join([r["project"], "default", json.dumps(r["default_flag"]), "score",
                            json.dumps(r["score"]), "z", json.dumps(r["z"]), "moved below",
                            json.dumps(r["displaced_moved_below_sigmas"])]))


if __name__ == "__main__":
    main()
