"""The one flag rule (core.flags) on real tiny training runs of DeepGUM and a baseline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core import flags
from core.noise import apply_noise
from core.project import Project, ScoreRow
from core.scoring import sample_flagged
from core.training import TrainConfig, train
from tests.core.synth import make_dots_project

FAST = dict(image_size=32, batch_size=16, score_every=0, rotate_jitter=5.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """One ellipse project (20% of landmarks displaced), a DeepGUM and a Huber run."""
    folder = tmp_path_factory.mktemp("flags")
    path = make_dots_project(folder, n=160)
    with Project.open(path) as project:
        apply_noise(project, "l-ugo:0.2", seed=0)
    ids = {m: train(path, TrainConfig(method=m, epochs=3, **FAST)) for m in ("deepgum", "huber")}
    return path, ids


def legacy_rows(project: Project, run_id: int) -> list[ScoreRow]:
    """A run's rows as a baseline run stored them before every method had
    probabilities: per landmark the residual length over that landmark's median on
    the training samples (no probabilities)."""
    scores = project.scores(run_id)
    train_ids = {s.id for s in project.samples(split="train")}
    err = {}
    for sid, row in scores.items():
        pred = np.asarray(row.prediction).reshape(-1, 2)
        err[sid] = np.linalg.norm(pred - project.current_label(sid).points, axis=1)
    med = np.median(np.stack([e for sid, e in err.items() if sid in train_ids]), axis=0)
    return [ScoreRow(sid, float((e / med).max()), None, list(e / med), None,
                     scores[sid].prediction) for sid, e in err.items()]


def _detection(project: Project, scores: dict, method: str) -> tuple[float, float]:
    """(share of clean train landmarks flagged, share of displaced ones flagged)."""
    truth = project.contamination()
    clean = [0, 0]
    bad = [0, 0]
    for s in project.samples(split="train"):
        f = flags.landmark_flags(scores[s.id], method)
        wrong = set(truth.get(s.id, (False, []))[1])
        for k in range(4):
            acc = bad if k in wrong else clean
            acc[0] += int(f[k])
            acc[1] += 1
    return clean[0] / clean[1], bad[0] / bad[1]


def test_the_rule_is_the_trainers_for_every_method(runs):
    path, ids = runs
    with Project.open(path) as project:
        for method, run_id in ids.items():
            assert project.run(run_id).method == method
            for row in project.scores(run_id).values():
                s = np.array(row.landmark_scores, dtype=float)
                f = flags.landmark_flags(row, method)
                assert f.shape == (4,) and f.dtype == bool
                np.testing.assert_array_equal(f, s > 0.0)
                np.testing.assert_array_equal(f, flags.landmark_probs(row, method) > 0.5)
                assert flags.sample_flagged(row, method) == sample_flagged(row.score)
            clean, bad = _detection(project, project.scores(run_id), method)
            assert clean < 0.1 and bad > 0.3, (method, clean, bad)


def test_an_old_baseline_run_is_flagged_by_its_ratio_not_as_log_odds(runs):
    """A baseline run stored before every method had probabilities holds residual
    ratios (all > 0): read as log-odds, sigmoid > 0.5 flags every landmark of every
    face, clean ones too. The rule reads them as ratios."""
    path, ids = runs
    with Project.open(path) as project:
        rows = legacy_rows(project, ids["huber"])
        assert all(v > 0 for r in rows for v in r.landmark_scores)
        old = project.create_run("huber", {"epochs": 1})
        project.write_scores(old, rows)
        scores = project.scores(old)
        clean, bad = _detection(project, scores, "huber")
        assert clean < 0.1 and bad > 0.3, (clean, bad)
        row = scores[rows[0].sample_id]
        assert flags.landmark_probs(row, "huber") is None
        assert not flags.is_log_odds(row, "huber") and flags.is_log_odds(row, "deepgum")


def test_deepgum_flags_are_its_probabilities_over_one_half(runs):
    path, ids = runs
    with Project.open(path) as project:
        for row in project.scores(ids["deepgum"]).values():
            probs = flags.landmark_probs(row, "deepgum")
            np.testing.assert_array_equal(flags.landmark_flags(row, "deepgum"), probs > 0.5)
            assert flags.flag_level(row.score, True) == pytest.approx(row.outlier_prob)


def test_rows_of_every_shape():
    age = ScoreRow(1, 2.0, 0.88)  # an age: no landmark scores, the sample's one score
    assert flags.landmark_flags(age, "huber").tolist() == [True]
    assert flags.sample_flagged(age, "l2")
    assert not flags.sample_flagged(ScoreRow(1, -0.5, 0.38), "tukey")
    # old baseline rows (no probability): ratios, flagged over 3
    assert not flags.sample_flagged({"score": 2.0}, "l2")
    assert flags.sample_flagged({"score": 3.5}, "l2")
    missing = {"score": 5.0, "landmark_scores": [None, 0.5, math.nan, 4.0]}
    assert flags.landmark_flags(missing, "tukey").tolist() == [False, False, False, True]
    assert not flags.sample_flagged({"score": None}, "deepgum")
    assert flags.flag_level(flags.LEGACY_RATIO_FLAG, False) == pytest.approx(0.5)
    assert flags.flag_level(None, True) is None
    # a row without stored probabilities gets them from its log-odds
    probs = flags.landmark_probs({"score": 0.0, "landmark_scores": [0.0, 50.0]}, "deepgum")
    np.testing.assert_allclose(probs, [0.5, 1.0])

