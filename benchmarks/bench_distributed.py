"""One run on N processes (torchrun, gloo on CPU) against the same run on one
process: the same detection within noise, and one writer.

The source is imported once, split and contaminated as ``gumshoe bench`` does it
(seeded: a clean 20 % test share, 10 % validation, the training labels
contaminated by ``--noise``), copied twice, and trained with the same command
line: ``python -m core train COPY ...`` and ``torchrun --nproc-per-node N ...
tests/core/dist_main.py train COPY ...`` (the same CLI, each rank noting its pid).
Detection is measured as in ``gumshoe bench`` (per landmark for l-ugo/ngo, per
image otherwise); the distributed copy is checked for one writer: one run, every
epoch written once, a score for every sample, the run's pid that of rank 0.

Usage (under the lock on a shared machine):
  flock /tmp/gumshoe-heavy.lock python benchmarks/bench_distributed.py \\
      ../shared/datasets/fgnet --format fgnet --task landmarks --noise l-ugo:0.3 \\
      --seed 0 --epochs 30 --json benchmarks/results/NAME.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def evaluate(path: Path, per_image: bool) -> dict[str, Any]:
    from core.bench import detection, test_errors
    from core.project import Project

    with Project.open(path) as project:
        runs = project.runs()
        run = runs[-1]
        epochs = project.epochs(run.id)
        det = detection(project, run.id, per_image)
        _, task = test_errors(project, run.id)
        return {"runs": len(runs), "status": run.status, "pid": run.pid,
                "device": run.device, "epochs": [e.epoch for e in epochs],
                "scores": len(project.scores(run.id, columns=("outlier_prob",))), "samples": project.count_samples(),
                "auroc": det["auroc"], "auprc": det["auprc"], "precision": det["precision"],
                "recall": det["recall"], **task,
                "train_images_per_s": sorted(e.images_per_s or 0.0 for e in epochs)[len(epochs) // 2],
                "data_wait_share": sum(e.metrics.get("data_wait_share", 0.0) for e in epochs)
                / max(len(epochs), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path)
    p.add_argument("--format", default="auto")
    p.add_argument("--task")
    p.add_argument("--noise", default="l-ugo:0.3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--head", choices=("auto", "fc", "heatmap"), default="auto",
                   help="the model's head")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--tolerance", type=float, default=0.002, help="largest AUROC difference")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--keep", type=Path, help="copy both trained projects here (to compare them)")
    args = p.parse_args()

    from core.bench import assign_splits
    from core.images import ImageCache
    from core.importer import import_source
    from core.noise import IMAGE_KINDS, apply_noise, parse_spec
    from core.project import Project

    spec = parse_spec(args.noise)
    per_image = all(k in IMAGE_KINDS or k == "age-u" for k, _ in spec.terms)
    train_args = ["--epochs", str(args.epochs), "--image-size", str(args.image_size),
                  "--seed", str(args.seed), "--head", args.head, "--quiet"]
    out: dict[str, Any] = {
        "benchmark": f"{args.nproc} processes (torchrun, gloo) vs 1, same seed and settings",
        "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "settings": {"source": str(args.source), "noise": args.noise, "seed": args.seed,
                     "epochs": args.epochs, "image_size": args.image_size, "head": args.head,
                     "nproc": args.nproc, "tolerance": args.tolerance}}
    with tempfile.TemporaryDirectory(prefix="gumshoe-dist-") as tmp:
        root = Path(tmp)
        base = root / "base.gumshoe"
        with Project.create(base) as project:
            import_source(project, args.source, args.format, args.task,
                          image_size=args.image_size)
            ImageCache(project.cache_dir, args.image_size).ensure(project.samples())
            assign_splits(project, args.seed, 0.2, 0.1)
            apply_noise(project, spec, args.seed)
        copies = {}
        for name in ("one", "many"):
            copies[name] = root / name / "bench.gumshoe"
            copies[name].parent.mkdir()
            shutil.copy2(base, copies[name])
            shutil.copytree(base.with_name(base.name + "-cache"),
                            copies[name].with_name("bench.gumshoe-cache"))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        runs: dict[str, Any] = {}
        single = [sys.executable, "-m", "core", "train", str(copies["one"]), *train_args]
        pids = root / "pids"
        pids.mkdir()
        many = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                str(args.nproc), "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
                str(ROOT / "tests" / "core" / "dist_main.py"), "train", str(copies["many"]),
                *train_args]
        out["commands"] = {"one": "python -m core train COPY " + " ".join(train_args),
                           "many": f"torchrun --nproc-per-node {args.nproc} -m core train COPY "
                                   + " ".join(train_args)}
        for name, cmd, extra in (("one", single, {}),
                                 ("many", many, {"GUMSHOE_TEST_DIR": str(pids)})):
            t0 = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, env={**env, **extra}, capture_output=True,
                                  text=True)
            seconds = time.perf_counter() - t0
            if done.returncode:
                sys.exit(f"{name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
            runs[name] = {"processes": 1 if name == "one" else args.nproc,
                          "wall_seconds": seconds, **evaluate(copies[name], per_image)}
            print(f"{name}: AUROC {runs[name]['auroc']:.4f}  test NME "
                  f"{runs[name]['test_nme']}  {seconds:.0f} s", flush=True)
        if args.keep:
            for name, path in copies.items():
                shutil.copytree(path.parent, args.keep / name, dirs_exist_ok=True)
        ranks = {int(d["rank"]): int(d["pid"]) for d in
                 (json.loads(f.read_text()) for f in pids.glob("rank-*.json"))}
    m = runs["many"]
    one_writer = (m["runs"] == 1 and m["status"] == "finished"
                  and m["epochs"] == list(range(args.epochs)) and m["scores"] == m["samples"]
                  and m["pid"] == ranks.get(0) and len(ranks) == args.nproc)
    diff = abs(m["auroc"] - runs["one"]["auroc"])
    out.update(results=runs, rank_pids=ranks, auroc_difference=diff,
               within_tolerance=diff <= args.tolerance, one_writer=one_writer)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"AUROC difference {diff:.4f} (tolerance {args.tolerance}); one writer: {one_writer}")
    print(f"results in {args.json}")


if __name__ == "__main__":
    main()
