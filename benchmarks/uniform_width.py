"""What the scoring uniform's width trades: quiet clean faces against recall of
small displacements. For projects trained by ``gumshoe bench --workdir`` with
DeepGUM, each run's final model is loaded from its checkpoint, its predictions are
recomputed (flip test-time augmented, as when it scored), and the training
samples are scored again with the outlier uniform

- ``engine``: as Gumshoe scores (the uniform spans the whole label range);
- ``floor-K``: fitted to the outliers' spread on the scoring residuals, but no
  narrower than K inlier standard deviations (the mixture's, times the median
  predicted scale), the floor held in every EM iteration;
- ``fitted``: fitted to the outliers' spread (DeepGUM's training step).

Everything else is :meth:`core.robust.deepgum.DeepGUM.unit_log_odds` (the image
scale, the image-level layer). Per project: the share of training faces the
default rule flags, how many correct faces score over 0.99, and per landmark
(where some were displaced) AUROC, precision and recall of the default flag and
the expected calibration error.

Usage:
  gumshoe bench ../shared/datasets/fgnet --format fgnet --task landmarks \\
      --noise l-ugo:0 --noise ngo:0.1 ... --methods deepgum --workdir WD --json X
  python benchmarks/uniform_width.py WD/*-seed*.gumshoe --json OUT
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from workdir_analysis import run  # also puts the repository on the path

FLOORS = (15.0, 20.0, 30.0, 40.0)


def predictions(path: Path) -> dict[str, Any]:
    """The run's final model on every sample, and the truth of the contamination."""
    from core.project import Project
    from core.training.checkpoints import checkpoint_path
    from core.training.config import TrainConfig
    from core.training.data import load_data
    from core.training.events import Callbacks
    from core.training.loop import Trainer
    from core.training.recorder import Recorder

    with Project.open(path) as p:
        run = p.runs()[-1]
        cfg = TrainConfig.from_dict(run.params["config"])
        if cfg.method != "deepgum" or cfg.folds != 1:
            raise SystemExit(f"{path}: a DeepGUM run scored in-sample is needed "
                             f"(this one: {cfg.method}, {cfg.folds} folds)")
        data = load_data(p, cfg.image_size)
        trainer = Trainer(run.id, cfg, data, Callbacks(), lambda: False, Recorder(),
                          checkpoint_path(p, run.id))
        try:
            trainer.restore()
            pred = trainer.predict_all()
        finally:
            trainer.close()
        truth = p.contamination()
    bad = [truth.get(int(s), (False, [])) for s in data.ids]
    points = np.zeros((len(data.ids), data.n_points), bool)
    for i, (_, lms) in enumerate(bad):
        points[i, list(lms)] = True
    return {"method": trainer.method, "res": data.targets - pred.mean, "log_scale": pred.log_scale,
            "mask": data.mask, "train": data.train, "reviewed": data.reviewed,
            "targets": data.targets, "points": points,
            "images": np.array([img or bool(lms) for img, lms in bad])}


def rescore(d: dict[str, Any], floor: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Point and sample log-odds with the uniform fitted, no narrower than ``floor``
    inlier SDs (0: no floor); mirrors DeepGUM.unit_log_odds otherwise."""
    from core.robust.deepgum import IMAGE_SCALE_PRIOR, SCORING_ITERATIONS
    from core.robust.mixture import centred

    method, res, mask, rows, held = d["method"], d["res"], d["mask"], d["train"], d["reviewed"]
    mix = copy.deepcopy(method.mixture)
    mix.full_width = False
    mix.width = mix.label_range.copy()  # from the full range, as the engine starts
    scale = method.dim_variance(d["log_scale"])
    seen = np.where(mask[rows], scale[rows], np.nan)
    typical = np.nan_to_num(np.nanmedian(seen, axis=0), nan=1.0)
    for _ in range(SCORING_ITERATIONS):  # the floor holds in every M-step
        mix.fit(res[rows], mask[rows], 1, None, scale[rows], held[rows])
        sd = np.sqrt(mix.var * typical)
        mix.width = np.clip(mix.width, np.minimum(floor * sd, mix.label_range), mix.label_range)
    mix.r, _ = mix.e_step(res[rows], mask[rows], scale[rows], held[rows])
    h = copy.deepcopy(mix).fit_sample_scales(centred(res, mask, 2), mask, rows,
                                             prior=IMAGE_SCALE_PRIOR, max_scale=np.inf, base=scale)
    return method._mixture_log_odds(mix, res, mask, rows, scale * h[:, None], held)


def metrics(d: dict[str, Any], point: np.ndarray, sample: np.ndarray) -> dict[str, Any]:
    from core.metrics import auroc, ece, precision_recall

    rows = d["train"]
    point, sample = point[rows], sample[rows]
    wrong_image, wrong_point = d["images"][rows], d["points"][rows]
    out: dict[str, Any] = {
        "flagged_share": float((sample > 0).mean()),
        "correct_faces_over_0.99": int(((sample > math.log(99)) & ~wrong_image).sum()),
        "correct_faces_flagged": int(((sample > 0) & ~wrong_image).sum())}
    if wrong_point.any():
        seen = np.isfinite(point)
        s, t = point[seen], wrong_point[seen]
        precision, recall = precision_recall(s > 0, t)
        out.update(auroc=auroc(s, t), precision=precision, recall=recall,
                   ece=ece(1.0 / (1.0 + np.exp(-s)), t))
    return out


VARIANTS: dict[str, Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]]] = {
    "engine": lambda d: (lambda u: (u.log_odds, u.sample_log_odds))(
        d["method"].unit_log_odds(d["res"], d["log_scale"], d["mask"], d["train"],
                                  d["reviewed"], d["targets"])),
    **{f"floor-{k:g}": (lambda d, k=k: rescore(d, k)) for k in FLOORS},
    "fitted": lambda d: rescore(d, 0.0)}


def analyse(path: Path) -> dict[str, Any]:
    d = predictions(path)
    return {"project": path.name, **{name: metrics(d, *fn(d)) for name, fn in VARIANTS.items()}}


def main() -> None:
    run(__doc__, "scoring uniform width: clean faces flagged vs displaced points found", analyse,
        lambda r: " ".join([r["project"], *(f"{n}: {json.dumps(r[n])}" for n in VARIANTS)]))


if __name__ == "__main__":
    main()
