"""``gumshoe bench``: known contamination, every method, several seeds.

The source is imported once into a temporary project. For each noise spec and
seed, a copy of it gets a seeded split (a clean held-out ``test`` share, a
``val`` share, the rest ``train``), its training labels are contaminated with
:func:`core.noise.apply_noise` (the truth is recorded in the project), and each
method trains on it with the same backbone, budget and seed. Detection is
measured on the training samples against the truth: per landmark for
``l-ugo``/``ngo``, per image for ``g-ugo``/``swap``/``age-u``; the task error on
the clean test split against the imported labels. For ages, ``l2-outre`` is the
L2 run's predictions scored by OUTRE (cleanlab's regression score).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.bench_report import comparisons, line, summary
from core.images import ImageCache
from core.importer import import_source
from core.metrics import (
    auprc,
    auroc,
    ece,
    failure_rate,
    mae,
    nme,
    point_errors,
    precision_recall,
    reliability,
)
from core.noise import IMAGE_KINDS, apply_noise, parse_spec
from core.project import Epoch, Project, Sample
from core.robust import METHODS
from core.scoring import outre_scores, sample_flagged
from core.training import StopFn, TrainConfig, train

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchSettings:
    methods: tuple[str, ...] = METHODS
    seeds: int = 3
    first_seed: int = 0  # seeds first_seed .. first_seed + seeds - 1
    test_share: float = 0.2
    val_share: float = 0.1
    train: TrainConfig = TrainConfig()


def sample_size(s: Sample) -> float:
    """The size errors are measured against: the box's longer side, else the image's."""
    if s.box is not None:
        return float(max(s.box[2] - s.box[0], s.box[3] - s.box[1]))
    return float(max(s.width, s.height))


def assign_splits(project: Project, seed: int, test_share: float, val_share: float) -> None:
    ids = np.array([s.id for s in project.samples()])
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test, n_val = round(test_share * len(ids)), round(val_share * len(ids))
    split = {}
    for rank, i in enumerate(order):
        split[int(ids[i])] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    project.set_splits(split)


# the issues that name each kind of contamination correctly (core.issues.ISSUES)
EXPECTED_ISSUES: dict[str, frozenset[str]] = {
    "swap": frozenset({"swap"}),
    "g-ugo": frozenset({"many_points", "shifted", "other_person"}),
    "l-ugo": frozenset({"points", "many_points"}),
    "ngo": frozenset({"points", "many_points"}),
    "age-u": frozenset({"age"}),
}


def detection(project: Project, run_id: int, per_image: bool,
              override: dict[int, float] | None = None,
              only: set[int] | None = None, kind: str | None = None) -> dict[str, Any]:
    """Detection on the training samples: AUROC and AUPRC of the run's scores,
    precision and recall of the default flag rule, the expected calibration error of
    its probabilities and their reliability diagram (per landmark, or per image with
    ``per_image``), and the share of images the rule flags. ``override``: another
    score per sample (it has no flag rule or probability of its own); ``only``: just
    these samples (e.g. the ones nobody has reviewed); ``kind``: the one kind of
    contamination applied, for ``issue_accuracy`` (the share of the contaminated
    samples flagged whose named issue fits that kind, :data:`EXPECTED_ISSUES`)."""
    scores = project.scores(run_id)
    truth = project.contamination()
    s, t, f, p = [], [], [], []
    n_images = n_flagged = n_named = n_right = 0
    expected = EXPECTED_ISSUES.get(kind or "")
    for sample in project.samples(split="train", include_excluded=False):
        row = scores.get(sample.id)
        if row is None or (only is not None and sample.id not in only):
            continue
        img, lms = truth.get(sample.id, (False, []))
        flagged = sample_flagged(row.score)
        n_images += 1
        n_flagged += flagged
        if flagged and (img or lms) and expected is not None:
            n_named += 1
            n_right += row.issue in expected
        if per_image or row.landmark_scores is None:
            s.append(row.score if override is None else override[sample.id])
            t.append(img or bool(lms))
            f.append(flagged)
            p.append(np.nan if row.outlier_prob is None else row.outlier_prob)
        else:
            bad = set(lms)
            probs = row.landmark_probs
            for k, v in enumerate(row.landmark_scores):
                if v is None or not np.isfinite(v):
                    continue
                s.append(v)
                t.append(k in bad)
                f.append(probs[k] > 0.5)
                p.append(probs[k])
    out: dict[str, Any] = {"auroc": auroc(s, t), "auprc": auprc(s, t)}
    if override is not None:  # a score with no flag rule or probability of its own
        return {**out, "precision": None, "recall": None, "ece": None, "flagged_share": None,
                "issue_accuracy": None, "reliability": []}
    precision, recall = precision_recall(f, t)
    return {**out, "precision": precision, "recall": recall, "ece": ece(p, t),
            "flagged_share": n_flagged / n_images if n_images else None,
            "issue_accuracy": n_right / n_named if n_named else None,
            "reliability": reliability(p, t)}


def test_errors(project: Project, run_id: int) -> tuple[dict[int, float], dict[str, float | None]]:
    """Per test sample error (landmarks: mean point error / size; age: |error| years)
    against the imported labels, and the summary fields."""
    scores = project.scores(run_id)
    per_sample: dict[int, float] = {}
    points: list[np.ndarray] = []
    ages_pred, ages_true = [], []
    samples = project.samples(split="test")
    originals = project.original_labels([s.id for s in samples])
    for sample in samples:
        row = scores.get(sample.id)
        lab = originals[sample.id]
        if row is None or row.prediction is None:
            continue
        pred = np.asarray(row.prediction, dtype=np.float64)
        if lab.points is not None:
            true = lab.points.copy()
            if lab.visibility is not None:
                true[lab.visibility == 0] = np.nan
            e = point_errors(pred.reshape(1, -1, 2), true[None], sample_size(sample))[0]
            if np.isfinite(e).any():
                per_sample[sample.id] = float(np.nanmean(e))
                points.append(e)
        elif lab.age is not None:
            per_sample[sample.id] = abs(float(pred[0]) - lab.age)
            ages_pred.append(float(pred[0]))
            ages_true.append(lab.age)
    if points:
        e = np.concatenate(points)
        return per_sample, {"test_nme": nme(e), "failure_rate": failure_rate(e), "test_mae": None}
    return per_sample, {"test_nme": None, "failure_rate": None,
                        "test_mae": mae(np.array(ages_pred), np.array(ages_true))}


def throughput(epochs: Sequence[Epoch]) -> dict[str, float | None]:
    """A run's data-wait share (the training passes' time spent waiting for batches,
    mean over epochs) and on CUDA its GPU utilisation (mean) and peak memory (MB)."""
    def values(key: str) -> list[float]:
        return [float(e.metrics[key]) for e in epochs if e.metrics.get(key) is not None]

    wait, util, memory = values("data_wait_share"), values("gpu_util"), values("gpu_memory_mb")
    return {"data_wait_share": float(np.mean(wait)) if wait else None,
            "gpu_util": float(np.mean(util)) if util else None,
            "gpu_memory_mb": max(memory) if memory else None}


def _copy_project(base: Path, dest: Path) -> None:
    shutil.copy2(base, dest)
    shutil.copytree(base.with_name(base.name + "-cache"), dest.with_name(dest.name + "-cache"))


def run_bench(source: str | Path, fmt: str, task: str | None, noises: Sequence[str],
              settings: BenchSettings, log: Log = print, should_stop: StopFn | None = None,
              workdir: str | Path | None = None) -> dict[str, Any]:
    """Run the benchmark; returns ``{"results": [...], "summary": [...],
    "comparisons": [...], "settings": {...}}`` (see the module docstring)."""
    specs = [parse_spec(n) for n in noises]
    stop = should_stop or (lambda: False)
    own_tmp = workdir is None
    root = Path(tempfile.mkdtemp(prefix="gumshoe-bench-")) if own_tmp else Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    errors: dict[tuple[str, str, int], dict[int, float]] = {}
    try:
        base = root / "base.gumshoe"
        size = settings.train.image_size
        with Project.create(base) as project:
            project.set_meta("image_size", str(size))
            t0 = time.perf_counter()
            imp = import_source(project, source, fmt, task, image_size=size)
            ImageCache(project.cache_dir, size).ensure(project.samples())
            log(f"imported {imp.added} samples ({imp.format}, {imp.task}), "
                f"{len(imp.skipped)} skipped, {time.perf_counter() - t0:.1f} s")
            is_age = project.schema is not None and project.schema.task == "age"
        for spec in specs:
            kinds = [k for k, _ in spec.terms]
            per_image = all(k in IMAGE_KINDS or k == "age-u" for k in kinds)
            for seed in range(settings.first_seed, settings.first_seed + settings.seeds):
                path = root / f"{str(spec).replace(':', '-').replace(',', '_')}-seed{seed}.gumshoe"
                _copy_project(base, path)
                with Project.open(path) as project:
                    assign_splits(project, seed, settings.test_share, settings.val_share)
                    apply_noise(project, spec, seed)
                for method in settings.methods:
                    if stop():
                        raise KeyboardInterrupt
                    cfg = replace(settings.train, method=method, seed=seed)
                    t0 = time.perf_counter()
                    run_id = train(path, cfg, should_stop=stop, owner="bench")
                    seconds = time.perf_counter() - t0
                    with Project.open(path) as project:
                        if project.run(run_id).status != "finished":
                            raise KeyboardInterrupt
                        epochs = project.epochs(run_id)
                        ips = [e.images_per_s for e in epochs]
                        total = sum(e.seconds or 0.0 for e in epochs) or 1.0
                        det = detection(project, run_id, per_image,
                                        kind=kinds[0] if len(kinds) == 1 else None)
                        per_sample, task_err = test_errors(project, run_id)
                        if not per_image and not is_age:  # per landmark, and per image too
                            img = detection(project, run_id, True)
                            det.update(image_auroc=img["auroc"],
                                       image_precision=img["precision"],
                                       image_recall=img["recall"])
                        row = {"method": method, "noise": str(spec), "seed": seed, **det,
                               **task_err, "seconds": seconds,
                               "epochs": project.run(run_id).epochs_planned,  # auto: fixed here
                               # the model's skill over the average label (its warning below 0.3)
                               "skill": epochs[-1].metrics.get("skill") if epochs else None,
                               "train_images_per_s": float(np.median(ips)) if ips else None,
                               # shares of the epochs' time: EM maths, and the eval pass
                               "estep_share": sum(e.metrics.get("estep_seconds", 0.0)
                                                  for e in epochs) / total,
                               "eval_share": sum(e.metrics.get("eval_seconds", 0.0)
                                                 for e in epochs) / total,
                               **throughput(epochs)}
                        results.append(row)
                        errors[(method, str(spec), seed)] = per_sample
                        log(line(row))
                        if is_age and method == "l2":
                            results.append(_outre_row(project, run_id, row, per_image))
                            errors[("l2-outre", str(spec), seed)] = per_sample
                            log(line(results[-1]))
    finally:
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)
    return {"results": results, "summary": summary(results),
            "comparisons": comparisons(errors),
            "settings": {"source": str(source), "format": fmt, "task": task,
                         "noise": [str(s) for s in specs], "methods": list(settings.methods),
                         "seeds": settings.seeds, "first_seed": settings.first_seed, "test_share": settings.test_share,
                         "val_share": settings.val_share, "train": settings.train.to_dict()}}


def _outre_row(project: Project, run_id: int, l2_row: dict[str, Any],
               per_image: bool) -> dict[str, Any]:
    scores = project.scores(run_id, columns=("prediction",))
    train_ids = [s.id for s in project.samples(split="train", include_excluded=False)
                 if s.id in scores]
    labels = project.current_labels(train_ids)
    ids = [i for i in train_ids if labels[i].age is not None]
    y = np.array([labels[i].age for i in ids])
    pred = np.array([scores[i].prediction[0] for i in ids])
    outre = dict(zip(ids, outre_scores(y, pred).tolist(), strict=True))
    det = detection(project, run_id, per_image, override=outre)
    return {**l2_row, "method": "l2-outre", **det}
