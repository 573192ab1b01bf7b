"""Reviewed labels teach the next run: two rounds of train -> review -> train.

A clean dataset is contaminated with a known truth (as ``gumshoe bench`` does), a
first run ranks it, and a simulated annotator reviews the top ``--review`` training
samples of the queue: a sample whose label was corrupted is fixed (its imported
label restored, status ``fixed``), the others confirmed. A second run then trains
with those labels held as inliers. Both rankings are measured on the samples
nobody reviewed, so the second run gets no credit for the annotator's work, only
for what the reviewed labels taught it.

    python benchmarks/bench_review_rounds.py ../shared/datasets/fgnet --format fgnet \\
        --task landmarks --noise swap:0.3 --review 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from core.bench import assign_splits, detection
from core.images import ImageCache
from core.importer import import_source
from core.noise import IMAGE_KINDS, apply_noise, parse_spec
from core.project import Project
from core.training import TrainConfig, train


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--format", default="auto")
    ap.add_argument("--task")
    ap.add_argument("--noise", default="swap:0.3")
    ap.add_argument("--review", type=int, default=100, help="top training samples reviewed")
    ap.add_argument("--method", default="deepgum")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()

    spec = parse_spec(args.noise)
    per_image = all(k in IMAGE_KINDS or k == "age-u" for k, _ in spec.terms)
    cfg = TrainConfig(method=args.method, epochs=args.epochs, image_size=args.image_size,
                      seed=args.seed, score_every=0)
    with tempfile.TemporaryDirectory(prefix="gumshoe-review-") as tmp:
        path = Path(tmp) / "p.gumshoe"
        with Project.create(path) as project:
            import_source(project, args.source, args.format, args.task,
                          image_size=args.image_size)
            ImageCache(project.cache_dir, args.image_size).ensure(project.samples())
            assign_splits(project, args.seed, 0.2, 0.1)
            apply_noise(project, spec, args.seed)
        t0 = time.perf_counter()
        first = train(path, cfg)
        with Project.open(path) as project:
            truth = project.contamination()
            train_ids = {s.id for s in project.samples(split="train")}
            ranked = [int(getattr(row, "sample_id", None) or row[0])
                      for row in project.queue(run_id=first)]
            queue = [sid for sid in ranked if sid in train_ids]
            reviewed, fixed = set(), 0
            for sid in queue[:args.review]:
                img, lms = truth.get(sid, (False, []))
                if img or lms:
                    orig = project.original_label(sid)
                    project.add_label(sid, points=orig.points, visibility=orig.visibility,
                                      age=orig.age, author="simulated annotator")
                    fixed += 1
                else:
                    project.set_review(sid, "confirmed", "simulated annotator")
                reviewed.add(sid)
            unreviewed = train_ids - reviewed
            before = detection(project, first, per_image, only=unreviewed)
        second = train(path, cfg)
        with Project.open(path) as project:
            after = detection(project, second, per_image, only=unreviewed)
        seconds = time.perf_counter() - t0
    keep = ("auroc", "auprc", "precision", "recall", "ece", "flagged_share")
    out = {"settings": {**vars(args), "source": str(args.source), "json": str(args.json)},
           "reviewed": len(reviewed), "fixed": fixed, "unreviewed": len(unreviewed),
           "first_run": {k: before[k] for k in keep}, "second_run": {k: after[k] for k in keep},
           "seconds": seconds}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("reviewed", "fixed", "first_run", "second_run")},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
