"""Where an age model's detection is lost: for projects trained by ``gumshoe bench
--workdir`` on an ``age-u`` protocol, the final scores' predictions against the
imported (clean) ages and the stored (contaminated) ones.

Per project, over the training samples: AUROC of the stored probability and of
the plain residual; the model's error against the imported age on clean samples
and on contaminated ones; the pull (how far, as a share of the contamination,
each contaminated sample's prediction moved from its true age towards the wrong
one, mean over contaminations over 10 years); the share of contaminations within
5 and 10 years of the true age (undetectable at this model's error); and the
AUROC a model would reach whose error on every sample were drawn from its
clean training samples' (no pull), by simulation.

Usage:
  gumshoe bench ../shared/datasets/utkface-part1 --format utkface --task age \\
      --noise age-u:0.3 --methods deepgum --seeds 1 --workdir WD --json X
  python benchmarks/age_residuals.py WD/age-u-0.3-seed0.gumshoe --json OUT
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from workdir_analysis import imported_label, run

from core.metrics import auroc
from core.project import Project


def analyse(path: Path) -> dict[str, Any]:
    with Project.open(path) as project:
        run_id = project.runs()[-1].id
        scores = project.scores(run_id)
        wrong = {sid for sid, (image, _) in project.contamination().items() if image}
        rows = []
        for s in project.samples(split="train"):
            row = scores.get(s.id)
            history = project.label_history(s.id)
            if row is None or history[-1].age is None:
                continue
            imported = imported_label(project, s.id).age
            rows.append((s.id in wrong, row.outlier_prob, row.prediction[0], history[-1].age,
                         imported))
    bad, prob, pred, stored, true = (np.array(c, dtype=np.float64) for c in zip(*rows, strict=True))
    bad = bad.astype(bool)
    moved = np.abs(stored - true)
    far = bad & (moved > 10)
    pull = (pred - true)[far] * np.sign((stored - true)[far]) / moved[far]
    clean_err = (stored - pred)[~bad]
    rng = np.random.default_rng(0)
    sims = []
    for _ in range(20):
        err = rng.choice(clean_err, size=len(bad))
        res = np.abs(np.where(bad, stored - true, 0.0) + err)
        sims.append(auroc(res, bad))
    return {"project": str(path), "run": run_id, "training_samples": len(bad),
            "contaminated": int(bad.sum()),
            "auroc": auroc(prob, bad), "auroc_residual": auroc(np.abs(stored - pred), bad),
            "error_clean_years": float(np.mean(np.abs(pred - true)[~bad])),
            "error_contaminated_years": float(np.mean(np.abs(pred - true)[bad])),
            "pull_mean": float(np.mean(pull)), "pull_median": float(np.median(pull)),
            "contaminations_within_5_years": float(np.mean(moved[bad] <= 5)),
            "contaminations_within_10_years": float(np.mean(moved[bad] <= 10)),
            "auroc_without_pull": float(np.mean(sims))}


if __name__ == "__main__":
    run(__doc__ or "", "age_residuals", analyse,
        lambda r: (f"{r['project']}: AUROC {r['auroc']:.4f}, error clean {r['error_clean_years']:.2f} "
                   f"/ contaminated {r['error_contaminated_years']:.2f} years, pull "
                   f"{r['pull_mean']:.3f}, without pull {r['auroc_without_pull']:.4f}"))
