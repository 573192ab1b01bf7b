"""Synthetic label contamination with a known truth (the benchmark protocols of core.bench).

A spec is one or more comma-separated ``kind:P`` terms, P a share in [0, 1]:

- ``g-ugo:P``  share P of images: every landmark moved to a uniform position in the image.
- ``l-ugo:P``  share P of all landmarks (over all images): moved to a uniform position.
- ``ngo:P``    share P of all landmarks: Gaussian displacement, sigma = 10% of the image
  size, where the size is ``max(width, height)`` of the image, or of the box for a boxed
  sample (one face among several: the displacement scales with the face).
- ``swap:P``   share P of images: left/right flip-pair landmarks exchanged (pairs with
  both points present; images with no such pair are not eligible).
- ``age-u:P``  share P of ages replaced by a different uniform age in the dataset's range
  (integers if all ages are).

Counts are exact: ``round(P * eligible units)``, picked by a permutation from a numpy
Generator seeded with ``(seed, term index)``, over units sorted by sample id. Missing
landmarks (NaN or visibility 0) are never eligible. Terms apply in order; a landmark
term never picks a landmark an earlier term of the same spec already picked (so
``g-ugo:0.05,l-ugo:0.15`` corrupts all landmarks of 5% of images plus 15% of all
landmarks elsewhere); put image terms first. The selection depends only on the
labels, spec and seed, and units the project already records as contaminated are
left alone, so running the same spec and seed again changes nothing.
:func:`apply_noise` contaminates training-split samples only: the held-out error is
measured against clean val/test labels.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.project import Label, LabelSchema, Project

KINDS = ("g-ugo", "l-ugo", "ngo", "swap", "age-u")
IMAGE_KINDS = ("g-ugo", "swap")
LANDMARK_KINDS = ("l-ugo", "ngo")
NGO_SIGMA = 0.10  # of the image (or box) size

Geometry = tuple[float, float, Sequence[float] | None]  # width, height, box (x0, y0, x1, y1)
Truth = dict[int, tuple[bool, list[int]]]  # sample id -> (image corrupted, landmark indices)


class NoiseError(ValueError):
    """A bad noise spec, or one that does not fit the project's labels."""


@dataclass(frozen=True)
class NoiseSpec:
    terms: tuple[tuple[str, float], ...]

    def __str__(self) -> str:
        return ",".join(f"{kind}:{share:g}" for kind, share in self.terms)


def parse_spec(text: str) -> NoiseSpec:
    """``"g-ugo:0.05,l-ugo:0.15"`` -> NoiseSpec; raises :class:`NoiseError`."""
    terms: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        kind, sep, value = (s.strip() for s in part.partition(":"))
        kind = kind.lower()
        if kind not in KINDS:
            raise NoiseError(f"noise spec {text!r}: unknown kind {kind!r} "
                             f"(expected one of {', '.join(KINDS)}, e.g. 'l-ugo:0.3')")
        try:
            share = float(value)
        except ValueError:
            raise NoiseError(f"noise spec {text!r}: {kind} needs a share, e.g. '{kind}:0.3'"
                             ) from None
        if not sep or not (math.isfinite(share) and 0.0 <= share <= 1.0):
            raise NoiseError(f"noise spec {text!r}: share of {kind} must be between 0 and 1")
        if any(k == kind for k, _ in terms):
            raise NoiseError(f"noise spec {text!r}: {kind} given twice")
        terms.append((kind, share))
    return NoiseSpec(tuple(terms))


def _pick(rng: np.random.Generator, pool: np.ndarray, n_eligible: int, share: float) -> np.ndarray:
    """Exactly round(share * n_eligible) members of ``pool`` (all of it if fewer)."""
    count = min(round(share * n_eligible), len(pool))
    return pool[rng.permutation(len(pool))[:count]]


def contaminate(labels: Mapping[int, Label], geometry: Mapping[int, Geometry],
                spec: NoiseSpec | str, seed: int, schema: LabelSchema, *,
                already: Mapping[int, tuple[bool, Sequence[int]]] | None = None,
                age_range: tuple[float, float] | None = None) -> tuple[dict[int, Label], Truth]:
    """Corrupt ``labels`` (sample id -> current label); pure, no project needed.

    ``geometry``: sample id -> (width, height, box or None). ``already``: truth
    recorded earlier (``Project.contamination()``); those units are not touched
    again. ``age_range``: the dataset's (min, max) age, by default that of
    ``labels``. Returns the changed labels (origin 'noise', not yet stored) and
    their truth, both keyed by sample id."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    for kind, _ in spec.terms:
        want = "age" if kind == "age-u" else "landmarks"
        if schema.task != want:
            raise NoiseError(f"noise {kind} needs {want} labels; this project has {schema.task}")
    ids = np.array(sorted(labels), dtype=np.int64)
    n = len(ids)
    already = already or {}
    if schema.task == "age":
        return _contaminate_ages(labels, ids, spec, seed, np.isin(ids, list(already)), age_range)
    skip_img = np.array([bool(already.get(int(s), (False, ()))[0]) for s in ids], bool)

    k = schema.n_keypoints
    pts = np.full((n, k, 2), np.nan)
    vis = np.zeros((n, k), np.int8)
    for i, s in enumerate(ids):
        lab = labels[int(s)]
        if lab.points is not None:
            pts[i] = lab.points
            vis[i] = lab.visibility if lab.visibility is not None else 2
    present = np.isfinite(pts).all(axis=2) & (vis > 0)
    skip_lm = np.zeros((n, k), bool)
    for i, s in enumerate(ids):
        skip_lm[i, list(already.get(int(s), (False, ()))[1])] = True
    skip_lm |= skip_img[:, None]
    geo = [geometry[int(s)] for s in ids]
    wh = np.array([[g[0], g[1]] for g in geo], dtype=np.float64).reshape(n, 2)
    size = np.array([max(g[0], g[1]) if g[2] is None else
                     max(g[2][2] - g[2][0], g[2][3] - g[2][1]) for g in geo]).reshape(n)
    perm = schema.flip_permutation()
    pairs = np.array([(a, b) for a, b in schema.flip_pairs], dtype=np.int64).reshape(-1, 2)
    picked_img = np.zeros(n, bool)
    picked_lm = np.zeros((n, k), bool)
    corrupted = np.zeros((n, k), bool)
    truth_img = np.zeros(n, bool)

    for t, (kind, share) in enumerate(spec.terms):
        rng = np.random.default_rng([seed, t])
        if kind in IMAGE_KINDS:
            pair_ok = present[:, pairs[:, 0]] & present[:, pairs[:, 1]]
            eligible = present.any(axis=1) if kind == "g-ugo" else pair_ok.any(axis=1)
            rows = _pick(rng, np.flatnonzero(eligible & ~picked_img), int(eligible.sum()), share)
            picked_img[rows] = True
            hit = present[rows] if kind == "g-ugo" else np.zeros((len(rows), k), bool)
            if kind == "swap":
                for j, i in enumerate(rows):
                    hit[j, pairs[pair_ok[i]].ravel()] = True
            picked_lm[rows] |= hit  # whether applied or not: the selection ignores `already`
            keep = ~(skip_lm[rows] & present[rows]).any(axis=1)  # already contaminated
            if kind == "g-ugo":
                draws = rng.uniform(0.0, 1.0, (len(rows), k, 2)) * wh[rows, None, :]
                for i, d, m in zip(rows[keep], draws[keep], hit[keep], strict=True):
                    pts[i, m] = d[m]
            else:
                for i, m in zip(rows[keep], hit[keep], strict=True):
                    idx = np.where(m, perm, np.arange(k))
                    pts[i], vis[i] = pts[i, idx], vis[i, idx]
            corrupted[rows[keep]] |= hit[keep]
            truth_img[rows[keep]] = True
        else:
            units = np.flatnonzero(present & ~picked_lm)
            chosen = _pick(rng, units, int(present.sum()), share)
            rows, cols = np.divmod(chosen, k)
            if kind == "l-ugo":
                new = rng.uniform(0.0, 1.0, (len(chosen), 2)) * wh[rows]
            else:
                new = pts[rows, cols] + rng.normal(0.0, 1.0, (len(chosen), 2)) * (
                    NGO_SIGMA * size[rows, None])
            ok = ~skip_lm[rows, cols]
            pts[rows[ok], cols[ok]] = new[ok]
            corrupted[rows[ok], cols[ok]] = True
            picked_lm[rows, cols] = True

    changed = np.flatnonzero(corrupted.any(axis=1))
    out: dict[int, Label] = {}
    truth: Truth = {}
    for i in changed:
        sid = int(ids[i])
        out[sid] = dataclasses.replace(labels[sid], id=0, points=pts[i].copy(),
                                       visibility=vis[i].copy(), origin="noise", note=str(spec))
        truth[sid] = (bool(truth_img[i]), [int(c) for c in np.flatnonzero(corrupted[i])])
    return out, truth


def _contaminate_ages(labels: Mapping[int, Label], ids: np.ndarray, spec: NoiseSpec, seed: int,
                      skip: np.ndarray, age_range: tuple[float, float] | None
                      ) -> tuple[dict[int, Label], Truth]:
    ages = np.array([np.nan if labels[int(s)].age is None else labels[int(s)].age for s in ids],
                    dtype=np.float64).reshape(len(ids))
    has = np.isfinite(ages)
    lo, hi = age_range if age_range is not None else (
        (float(ages[has].min()), float(ages[has].max())) if has.any() else (0.0, 0.0))
    integral = bool(np.all(ages[has] == np.round(ages[has])))
    out: dict[int, Label] = {}
    truth: Truth = {}
    for t, (_, share) in enumerate(spec.terms):
        rng = np.random.default_rng([seed, t])
        rows = _pick(rng, np.flatnonzero(has), int(has.sum()), share)
        if len(rows) and hi <= lo:
            raise NoiseError(f"noise age-u: the ages span no range ({lo:g} to {hi:g})")
        new = ages[rows].copy()
        redo = np.ones(len(rows), bool)
        while redo.any():  # a replacement equal to the old age would corrupt nothing
            draw = rng.uniform(lo, hi, int(redo.sum()))
            new[redo] = np.round(draw) if integral else draw
            redo = new == ages[rows]
        for i, age in zip(rows, new, strict=True):
            if not skip[i]:
                sid = int(ids[i])
                out[sid] = dataclasses.replace(labels[sid], id=0, age=float(age),
                                               origin="noise", note=str(spec))
                truth[sid] = (True, [])
    return out, truth


def apply_noise(project: Project, spec: NoiseSpec | str, seed: int,
                sample_ids: Sequence[int] | None = None, author: str = "noise") -> Truth:
    """Contaminate the current labels of the project's training samples (of
    ``sample_ids`` if given; val/test labels stay clean, the held-out error is
    measured on them). Appends the corrupted labels (origin 'noise') and records
    the truth in one transaction; returns the truth of this call."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    schema = project.schema
    if schema is None:
        raise NoiseError(f"{project.path}: the project has no labels to contaminate")
    samples = project.samples(split="train")
    if sample_ids is not None:
        wanted = set(sample_ids)
        samples = [s for s in samples if s.id in wanted]
    every = project.current_labels()
    labels = {s.id: every[s.id] for s in samples if s.id in every}
    ages = [lab.age for lab in every.values() if lab.age is not None]
    age_range = (min(ages), max(ages)) if ages else None
    old = {int(r[0]): (r[1], bool(r[2]), json.loads(r[3])) for r in project.conn.execute(
        "SELECT sample_id, spec, image_corrupted, landmarks FROM contamination")}
    new, truth = contaminate(
        labels, {s.id: (s.width, s.height, s.box) for s in samples}, spec, seed, schema,
        already={sid: (img, lms) for sid, (_, img, lms) in old.items()}, age_range=age_range)
    rows = []
    for sid, (img, lms) in truth.items():
        prev_spec, prev_img, prev_lms = old.get(sid, (None, False, []))
        rows.append((sid, str(spec) if prev_spec is None else f"{prev_spec};{spec}", seed,
                     img or prev_img, sorted(set(lms) | set(prev_lms))))
    with project.transaction():
        for sid, lab in new.items():
            project._insert_label(sid, lab.points, lab.visibility, lab.age, "noise", author,
                                  str(spec))
        project.record_contamination(rows)
    return truth
