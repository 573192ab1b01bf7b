"""The one flag rule (core.flags) on real tiny training runs of DeepGUM and a baseline."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core import flags
from core.noise import apply_noise
from core.project import Project, ScoreRow
from core.scoring import BASELINE_FLAG, image_flagged
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


def test_the_rule_is_the_trainers_for_every_method(runs):
    path, ids = runs
    with Project.open(path) as project:
        for method, run_id in ids.items():
            assert project.run(run_id)["method"] == method
            log_odds = method == "deepgum"
            for row in project.scores(run_id).values():
                s = np.array(row["landmark_scores"], dtype=float)
                f = flags.landmark_flags(row, method)
                assert f.shape == (4,) and f.dtype == bool
                np.testing.assert_array_equal(f, s > (0.0 if log_odds else BASELINE_FLAG))
                assert flags.sample_flagged(row, method) == image_flagged(s, log_odds)


def test_a_baseline_does_not_flag_every_landmark(runs):
    """Huber's scores are residual ratios (all > 0): read as log-odds, sigmoid > 0.5 flags
    every landmark of every face, clean ones too. The rule flags few clean landmarks and
    finds displaced ones."""
    path, ids = runs
    with Project.open(path) as project:
        truth = project.contamination()
        scores = project.scores(ids["huber"])
        clean_flagged, clean_n, bad_flagged, bad_n, positive, total = 0, 0, 0, 0, 0, 0
        for s in project.samples(split="train"):
            row = scores[s.id]
            f = flags.landmark_flags(row, "huber")
            bad = set(truth.get(s.id, (False, []))[1])
            for k in range(4):
                total += 1
                positive += row["landmark_scores"][k] > 0
                if k in bad:
                    bad_n += 1
                    bad_flagged += f[k]
                else:
                    clean_n += 1
                    clean_flagged += f[k]
        assert positive == total  # why sigmoid(score) > 0.5 flagged everything
        assert clean_flagged / clean_n < 0.1
        assert bad_flagged / bad_n > 0.3
        assert flags.landmark_probs(scores[1], "huber") is None


def test_deepgum_flags_are_its_probabilities_over_one_half(runs):
    path, ids = runs
    with Project.open(path) as project:
        for row in project.scores(ids["deepgum"]).values():
            probs = flags.landmark_probs(row, "deepgum")
            np.testing.assert_array_equal(flags.landmark_flags(row, "deepgum"), probs > 0.5)
            assert flags.flag_level(row["score"], "deepgum") == pytest.approx(row["outlier_prob"])


def test_rows_of_every_shape():
    age = ScoreRow(1, 2.0, 0.88)  # an age: no landmark scores, the sample's one score
    assert flags.landmark_flags(age, "deepgum").tolist() == [True]
    assert flags.sample_flagged(age, "deepgum")
    assert not flags.sample_flagged({"score": 2.0}, "l2")
    assert flags.sample_flagged({"score": 3.5}, "l2")
    missing = {"score": 5.0, "landmark_scores": [None, 0.5, math.nan, 4.0]}
    assert flags.landmark_flags(missing, "tukey").tolist() == [False, False, False, True]
    assert not flags.sample_flagged({"score": None}, "deepgum")
    assert flags.flag_level(BASELINE_FLAG, "barron") == pytest.approx(0.5)
    assert flags.flag_level(None, "deepgum") is None
    # a row without stored probabilities gets them from its log-odds
    probs = flags.landmark_probs({"score": 0.0, "landmark_scores": [0.0, 50.0]}, "deepgum")
    np.testing.assert_allclose(probs, [0.5, 1.0])

