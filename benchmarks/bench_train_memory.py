"""How much memory the trainer's data takes: peak RSS growth of ``load_data`` (the
labels, letterboxes and a view of the image cache) and of reading one batch, in a
fresh process per image size so earlier allocations do not hide the peak.

Usage: python benchmarks/bench_train_memory.py ../shared/datasets/fgnet --format fgnet
       [--sizes 64,256] [--batch 32]

The source is imported into a temporary project once; each size's cache is built
in its own process first, then measured in another.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(project_path: str, size: int, batch: int) -> dict[str, float]:
    import numpy as np

    from core.project import Project
    from core.training import load_data

    with Project.open(project_path) as project:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        data = load_data(project, size)
        seconds = time.perf_counter() - t0
        after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        data.images[np.arange(min(batch, len(data.images)))]
        after_batch = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"size": size, "samples": len(data.ids), "cache_mb": data.images.nbytes / 2**20,
            "load_seconds": seconds, "load_rss_growth_mb": (after_load - before) / 1024,
            "batch_rss_growth_mb": (after_batch - after_load) / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?")
    p.add_argument("--format", default="auto")
    p.add_argument("--sizes", default="64,256")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--measure", nargs=3, metavar=("PROJECT", "SIZE", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("--build", nargs=2, metavar=("PROJECT", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]), int(args.measure[2]))))
        return
    if args.build:
        from core.images import ImageCache
        from core.project import Project

        with Project.open(args.build[0]) as project:
            ImageCache(project.cache_dir, int(args.build[1])).ensure(project.samples())
        return
    if not args.source:
        p.error("a dataset source is needed")
    from core.importer import import_source
    from core.project import Project

    with tempfile.TemporaryDirectory(prefix="gumshoe-mem-") as tmp:
        path = str(Path(tmp) / "mem.gumshoe")
        with Project.create(path) as project:
            import_source(project, args.source, args.format)
        print(f"# {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
        for size in (int(s) for s in args.sizes.split(",")):
            me = [sys.executable, __file__]
            subprocess.run([*me, "--build", path, str(size)], check=True, cwd=ROOT)
            out = subprocess.run([*me, "--measure", path, str(size), str(args.batch)], check=True,
                                 cwd=ROOT, capture_output=True, text=True).stdout
            r = json.loads(out)
            print(f"{r['size']:4d} px, {r['samples']} samples: cache {r['cache_mb']:.0f} MB on disk, "
                  f"load_data {r['load_seconds']:.2f} s, peak RSS +{r['load_rss_growth_mb']:.0f} MB, "
                  f"one batch of {args.batch} +{r['batch_rss_growth_mb']:.0f} MB")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
