"""What a method costs to train, against a reference method: whole training
epochs (the pass and the method's between-epoch fit, as ``gumshoe train`` runs
them; no validation or scoring) of one trainer per method on the same data,
alternating between the methods, so a slow spell of a shared machine hits each
side of a pair alike. Reports each method's median epoch, its training images
per second, and the median of the per-pair ratios against the first method
(``cost``: 1.10 means 10 % more time per epoch).

The question it answers (issue: the uncertainty head must cost under 10 % more
than the model without it): ``--methods deepgum-global,deepgum``.

Usage (under the lock on a shared machine):
  flock /tmp/gumshoe-heavy.lock python benchmarks/bench_method_cost.py \\
      --source ../shared/datasets/fgnet --format fgnet --task landmarks \\
      --methods deepgum-global,deepgum --noise l-ugo:0.1 --json benchmarks/results/NAME.json
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", default="auto")
    p.add_argument("--task")
    p.add_argument("--methods", default="deepgum-global,deepgum",
                   help="comma-separated; the first is the reference")
    p.add_argument("--noise", default="", help="contamination of the labels (as gumshoe bench)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--pairs", type=int, default=15, help="timed epochs of each method")
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()

    import torch

    from core.importer import import_source
    from core.noise import apply_noise
    from core.project import Project
    from core.training import Recorder, TrainConfig, load_data, loop
    from core.training.events import Callbacks

    methods = args.methods.split(",")
    out: dict[str, Any] = {
        "benchmark": "method cost: alternating training epochs (pass + between-epoch fit)",
        "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "settings": {"methods": methods, "noise": args.noise, "image_size": args.size,
                     "pairs": args.pairs}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.gumshoe"
        with Project.create(path) as project:
            import_source(project, args.source, args.format, args.task)
            if args.noise:
                apply_noise(project, args.noise, seed=0)
        with Project.open(path) as project:
            data = load_data(project, args.size)
        from core.training.errors import average_label

        trainers = {}
        for m in methods:
            cfg = TrainConfig(method=m, image_size=args.size, workers=0, seed=0, device="cpu",
                              epochs=args.pairs + 2, warmup_epochs=0)
            trainers[m] = loop.Trainer(0, cfg, data, Callbacks(), lambda: False, Recorder(),
                                       Path(tmp) / f"{m}.pt", writer=False)
        passes: dict[str, list[float]] = {m: [] for m in methods}
        fits: dict[str, list[float]] = {m: [] for m in methods}
        try:
            for t in trainers.values():  # as a run starts (Trainer.run)
                t.model.init_output(torch.from_numpy(average_label(data).astype("float32")))
                t.method.start(t.fit_context(0))
            for k in range(args.pairs + 1):  # the first round warms up, untimed
                # each method goes first in every other round (no order effect)
                for m in (methods if k % 2 == 0 else methods[::-1]):
                    t = trainers[m]
                    t0 = time.perf_counter()
                    t.train_epoch()
                    t1 = time.perf_counter()
                    t.method.after_epoch(t.fit_context(k + 1))
                    t2 = time.perf_counter()
                    t.epoch += 1
                    if k:
                        passes[m].append(t1 - t0)
                        fits[m].append(t2 - t1)
        finally:
            for t in trainers.values():
                t.close()
    bs = min(TrainConfig().batch_size, len(data.train))
    images = len(data.train) // bs * bs
    ref = methods[0]
    epochs = {m: [a + b for a, b in zip(passes[m], fits[m], strict=True)] for m in methods}
    rows = []
    for m in methods:
        row = {"method": m, "epoch_median_s": statistics.median(epochs[m]),
               "pass_median_s": statistics.median(passes[m]),
               "fit_median_s": statistics.median(fits[m]),
               "train_images_per_s": images / statistics.median(epochs[m]),
               "cost": statistics.median(
                   [a / b for a, b in zip(epochs[m], epochs[ref], strict=True)]),
               "epoch_seconds": epochs[m], "fit_seconds": fits[m]}
        rows.append(row)
        print(f"{m:16s} epoch {row['epoch_median_s']:.3f} s (pass {row['pass_median_s']:.3f}, "
              f"fit {row['fit_median_s']:.3f})  {row['train_images_per_s']:6.1f} img/s  "
              f"cost vs {ref} {row['cost']:.3f}", flush=True)
    out["results"] = rows
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
