"""Project-file figures for the foundation issue:

* import + image cache of real datasets, in images per second;
* open a 100 000-sample project and list the top 1000 samples by score;
* project file size per sample.

Usage: python benchmarks/bench_project.py [--datasets ../shared/datasets] [--samples 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from core.importer import import_source
from core.project import NewSample, Project, ScoreRow
from core.schemas import IBUG68


def bench_import(datasets: Path, tmp: Path) -> list[dict[str, object]]:
    out = []
    for name, fmt, task in [("fgnet", "fgnet", "landmarks"), ("utkface-part1", "utkface", "age")]:
        src = datasets / name
        if not src.exists():
            print(f"skip {name}: {src} not found")
            continue
        path = tmp / f"{name}.gumshoe"
        with Project.create(path) as p:
            res = import_source(p, src, fmt, task)
            size = path.stat().st_size + sum(
                f.stat().st_size for f in Path(str(path) + "-wal").parent.glob(path.name + "-wal"))
        row = {"dataset": name, "images": res.added, "skipped": len(res.skipped),
               "seconds": round(res.seconds, 2), "images_per_s": round(res.images_per_s, 1),
               "file_bytes_per_sample": round(size / max(res.added, 1))}
        print(json.dumps(row))
        out.append(row)
    return out


def bench_queue(tmp: Path, n: int) -> dict[str, object]:
    path = tmp / "big.gumshoe"
    rng = np.random.default_rng(0)
    with Project.create(path, IBUG68) as p:
        src = p.add_source(tmp, "csv", "landmarks")
        batch = 5000
        for start in range(0, n, batch):
            p.add_samples(src, [NewSample(f"img{i:06d}.jpg", f"img{i:06d}.jpg", 640, 480, f"{i:032x}",
                                          points=rng.uniform(0, 400, (68, 2)))
                                for i in range(start, min(n, start + batch))])
        run = p.create_run("deepgum")
        scores = rng.normal(size=n)
        p.write_scores(run, (ScoreRow(i + 1, float(scores[i]), landmark_scores=rng.normal(size=68),
                                      prediction=rng.uniform(0, 400, 136)) for i in range(n)))
        p.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        with Project.open(path) as p:
            top = p.queue(limit=1000)
            total = p.queue_count()
        times.append(time.perf_counter() - t0)
    assert len(top) == 1000 and total == n
    row = {"samples": n, "open_and_top1000_ms_median": round(1000 * statistics.median(times), 1),
           "open_and_top1000_ms_max": round(1000 * max(times), 1),
           "file_bytes_per_sample_with_scores": round(size / n)}
    print(json.dumps(row))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    ap.add_argument("--samples", type=int, default=100_000)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    tmp = Path(tempfile.mkdtemp(prefix="gumshoe-bench-"))
    try:
        bench_import(args.datasets, tmp)
        bench_queue(tmp, args.samples)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
