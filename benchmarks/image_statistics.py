"""Why a per-image AUROC misses: for projects trained by ``gumshoe bench
--workdir`` on a one-point protocol (ngo), the per-image AUROC of the stored
score against other statistics of the same residuals, and a reference that
needs no model skill to beat: each corrupted face scored by its true
displacement (from the label history) against each clean face's worst residual
in pixels. A corrupted face whose displacement is below the typical clean face's
worst residual cannot be told from a clean one by residual size.

Statistics (training samples): ``score`` (the stored sample log-odds),
``max_point`` (the highest point log-odds), ``max_z`` (the largest residual over
its predicted scale), ``max_z_over_median`` and ``max_z_minus_median`` (that
against the face's median one: relative to how well the face is predicted).

Usage:
  gumshoe bench ../shared/datasets/fgnet --format fgnet --task landmarks \\
      --noise ngo:0.0016 --methods deepgum --seeds 2 --first-seed 1 --workdir WD --json X
  python benchmarks/image_statistics.py WD/ngo-0.0016-seed*.gumshoe --json OUT
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from workdir_analysis import imported_points, run  # also puts the repository on the path


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability that a corrupted sample outranks a clean one (ties count half)."""
    pos, neg = s[y], s[~y]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def analyse(path: Path) -> dict[str, Any]:
    from core.project import Project

    with Project.open(path) as p:
        run = p.runs()[-1]
        scores, truth, labels = p.scores(run.id), p.contamination(), p.current_labels()
        stats: dict[str, list[float]] = {k: [] for k in (
            "score", "max_point", "max_z", "max_z_over_median", "max_z_minus_median")}
        y, clean_worst, displacement = [], [], []
        for s in p.samples(split="train"):
            r = scores.get(s.id)
            if r is None or r.prediction is None or r.prediction_std is None:
                continue
            label = labels[s.id].points
            d = np.linalg.norm(label - np.asarray(r.prediction).reshape(-1, 2), axis=1)
            z = d / np.asarray(r.prediction_std)
            corrupted = bool(truth.get(s.id, (False, []))[1])
            y.append(corrupted)
            stats["score"].append(r.score)
            stats["max_point"].append(float(np.nanmax(r.landmark_scores)))
            stats["max_z"].append(float(np.nanmax(z)))
            stats["max_z_over_median"].append(float(np.nanmax(z) / np.nanmedian(z)))
            stats["max_z_minus_median"].append(float(np.nanmax(z) - np.nanmedian(z)))
            if corrupted:
                original = imported_points(p, s.id)
                moved = truth[s.id][1]
                displacement.append(float(np.max(np.linalg.norm(label[moved] - original[moved],
                                                                axis=1))))
            else:
                clean_worst.append(float(np.nanmax(d)))
    yy = np.array(y)
    worst, disp = np.array(clean_worst), np.array(displacement)
    return {"project": path.name, "corrupted": int(yy.sum()), "samples": len(yy),
            "auroc": {k: auroc(yy, np.array(v)) for k, v in stats.items()},
            "clean_worst_residual_px_median": float(np.median(worst)),
            "displaced_below_that": int((disp < np.median(worst)).sum()),
            "auroc_true_displacement_vs_clean_worst_residual":
                float((disp[:, None] > worst[None, :]).mean())}


def main() -> None:
    run(__doc__, "per-image statistics of one-point errors", analyse, lambda r: " ".join([
        r["project"], json.dumps(r["auroc"]), "displaced below the clean worst:",
        str(r["displaced_below_that"]), "of", str(r["corrupted"]),
        f"reference {r['auroc_true_displacement_vs_clean_worst_residual']:.3f}"]))


if __name__ == "__main__":
    main()
