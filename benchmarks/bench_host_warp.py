"""The CPU trainer's jitter: OpenCV on the uint8 rows (``warp_rows``, the default
on a CPU) against ``grid_sample`` on the float batch (``apply_jitter``, what an
accelerator runs), as whole training passes of one trainer alternating between
the two (``core.training.loop.HOST_WARP``), so a slow spell of a shared machine
hits both. Reports the median pass of each and the median of the per-pair ratios
(host / device: under 1 means the OpenCV warp is faster).

Usage (under the lock on a shared machine):
  flock /tmp/gumshoe-heavy.lock python benchmarks/bench_host_warp.py \\
      --source ../shared/datasets/fgnet --format fgnet --task landmarks \\
      --sizes 64,128 --json benchmarks/results/NAME.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", default="auto")
    p.add_argument("--task")
    p.add_argument("--sizes", default="64,128")
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args()

    import torch

    from core.importer import import_source
    from core.project import Project
    from core.training import Recorder, TrainConfig, load_data, loop
    from core.training.events import Callbacks

    out = {"benchmark": "CPU jitter: OpenCV on uint8 rows vs grid_sample on the float batch",
           "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
           "machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "torch": torch.__version__, "threads": torch.get_num_threads()},
           "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.gumshoe"
        with Project.create(path) as project:
            import_source(project, args.source, args.format, args.task)
        for size in (int(s) for s in args.sizes.split(",")):
            with Project.open(path) as project:
                data = load_data(project, size)
            cfg = TrainConfig(image_size=size, workers=0, epochs=2 * args.pairs + 2, seed=0,
                              device="cpu")
            t = loop.Trainer(0, cfg, data, Callbacks(), lambda: False, Recorder(),
                             Path(tmp) / "ck.pt", writer=False)
            try:
                t.method.start(t.fit_context(0))
                t.train_epoch()  # warm-up
                secs: dict[bool, list[float]] = {True: [], False: []}
                for _ in range(args.pairs):
                    for host in (True, False):
                        loop.HOST_WARP = host
                        t0 = time.perf_counter()
                        t.train_epoch()
                        secs[host].append(time.perf_counter() - t0)
            finally:
                loop.HOST_WARP = True
                t.close()
            row = {"image_size": size, "host_seconds": secs[True], "device_seconds": secs[False],
                   "host_median_s": statistics.median(secs[True]),
                   "device_median_s": statistics.median(secs[False]),
                   "host_over_device_pairs": statistics.median(
                       [h / d for h, d in zip(secs[True], secs[False], strict=True)])}
            out["results"].append(row)
            print(f"{size:4d} px  OpenCV {row['host_median_s']:.3f} s  grid_sample "
                  f"{row['device_median_s']:.3f} s  per pair {row['host_over_device_pairs']:.3f}",
                  flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
