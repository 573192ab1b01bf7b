"""Where an epoch's time goes at scale: the training pass, the method's E-step,
the validation pass and the scoring, as shares of the epoch.

A project of ``--synthetic N`` drawn ellipse images (4 landmarks; the labels of
``--noise-share`` of them moved, so the mixture has outliers to find) is trained
for ``--epochs`` epochs with scores written after every epoch, through the
real run (:func:`core.training.train`: the project file, the image cache, the
loader, the recorder). Per epoch the script records what the run reports to its
callbacks: the epoch's seconds, its E-step seconds (the method's between-epoch
fit and the passes that fed it), its validation seconds, and the scoring's
seconds (the evaluation pass over every sample, the score rows, the write into
the project file). The figures to reach on a GPU: E-step and scoring each under
5 % of an epoch at 100 000 samples.

Usage:
  python benchmarks/bench_epoch_shares.py --synthetic 100000 --device cuda \\
      --batch-size 256 --json benchmarks/results/NAME.json
  (on this project's 2-core CPU machine only small N make sense: the training
  pass alone runs at about 150 images/s at 64 px.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(folder: Path, n: int, side: int, noise_share: float, seed: int) -> Path:
    """The drawn project, a ``noise_share`` of its training labels moved."""
    from core.noise import apply_noise
    from core.project import Project
    from tests.core.synth import make_dots_project

    path = make_dots_project(folder, n=n, side=side, seed=seed)
    if noise_share > 0:
        with Project.open(path) as project:
            apply_noise(project, f"l-ugo:{noise_share}", seed=seed)
    return path


def measure(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from core.training import Callbacks, EpochEvent, ScoresEvent, TrainConfig, train

    class Watch(Callbacks):
        def __init__(self) -> None:
            self.epochs: list[EpochEvent] = []
            self.scores: list[ScoresEvent] = []

        def on_epoch_end(self, event: EpochEvent) -> None:
            self.epochs.append(event)

        def on_scores(self, event: ScoresEvent) -> None:
            self.scores.append(event)

    cfg = TrainConfig(epochs=args.epochs, image_size=args.image_size,
                      batch_size=args.batch_size, device=args.device, workers=args.workers,
                      score_every=1, seed=args.seed, method=args.method)
    watch = Watch()
    t0 = time.perf_counter()
    train(path, cfg, watch, owner="bench")
    wall = time.perf_counter() - t0
    rows = []
    if len(watch.scores) != len(watch.epochs):
        raise RuntimeError(f"{len(watch.epochs)} epochs but {len(watch.scores)} score writes")
    # scores are written after every epoch (score_every=1), in order
    for e, scored in zip(watch.epochs, watch.scores, strict=True):
        scoring = scored.seconds
        rows.append({
            "epoch": e.epoch, "seconds": e.seconds, "images_per_s": e.images_per_s,
            "train_pass_seconds": e.seconds - e.estep_seconds - e.eval_seconds,
            "estep_seconds": e.estep_seconds, "eval_seconds": e.eval_seconds,
            "scoring_seconds": scoring,
            "estep_share": e.estep_seconds / e.seconds,
            "scoring_share": scoring / e.seconds,
            "data_wait_share": e.data_wait_share, "gpu_util": e.gpu_util,
            "gpu_memory_mb": e.gpu_memory_mb})
    # the first epoch carries the first E-step (before any training) and warm-up
    later = rows[1:] or rows
    return {"wall_seconds": wall, "epochs": rows,
            "median_estep_share": statistics.median(r["estep_share"] for r in later),
            "median_scoring_share": statistics.median(r["scoring_share"] for r in later)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synthetic", type=int, default=100_000, help="drawn images")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=-1, help="loader workers (-1 = auto)")
    p.add_argument("--method", default="deepgum")
    p.add_argument("--noise-share", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, help="where the project is built (default: a temp dir)")
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()
    import torch

    out: dict[str, Any] = {
        "benchmark": "epoch shares: training pass, E-step, validation and scoring",
        "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "target": "E-step and scoring each under 5 % of an epoch at 100 000 samples (GPU)"}
    with tempfile.TemporaryDirectory(prefix="gumshoe-shares-", dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        path = build(Path(tmp), args.synthetic, args.image_size, args.noise_share, args.seed)
        out["build_seconds"] = time.perf_counter() - t0
        out.update(measure(path, args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    for r in out["epochs"]:
        print(f"epoch {r['epoch']}: {r['seconds']:.1f} s  train pass {r['train_pass_seconds']:.1f} s"
              f"  E-step {100 * r['estep_share']:.1f}%  scoring {100 * r['scoring_share']:.1f}%")
    print(f"median of the later epochs: E-step {100 * out['median_estep_share']:.1f}%, "
          f"scoring {100 * out['median_scoring_share']:.1f}% of an epoch; results in {args.json}")


if __name__ == "__main__":
    main()
