"""Naming the likely error of a flagged label: similarity fit by hand, and one
synthetic face per kind of error."""

from __future__ import annotations

import numpy as np
import pytest

from core.issues import fit_similarity, name_issue, name_issues

RNG = np.random.default_rng(3)
FACE = RNG.uniform(-0.3, 0.3, (12, 2))  # a 12-point "shape" in normalised units
BAD, GOOD = 50.0, -8.0  # landmark log-odds: clearly wrong / clearly right


def test_similarity_recovers_a_known_transform() -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    dst = 1.7 * FACE @ np.array([[c, -s], [s, c]]).T + np.array([0.2, -0.1])
    sim = fit_similarity(FACE, dst)
    assert sim.scale == pytest.approx(1.7) and sim.angle == pytest.approx(0.3)
    np.testing.assert_allclose(sim.apply(FACE), dst, atol=1e-12)


def issue(label: np.ndarray, log_odds: np.ndarray, swap: float | None = None) -> str | None:
    mask = np.ones(FACE.size, bool)
    return name_issue(label.reshape(-1), FACE.reshape(-1), mask, log_odds,
                      float(log_odds.max()), swap, 0.01, "landmarks")


def test_each_kind_of_error_is_named() -> None:
    clean = np.full(12, GOOD)
    assert issue(FACE, clean) is None  # not flagged: no issue
    two = clean.copy()
    two[[3, 7]] = BAD
    moved = FACE.copy()
    moved[[3, 7]] += 0.2
    assert issue(moved, two) == "points"
    all_bad = np.full(12, BAD)
    assert issue(FACE + np.array([0.08, 0.05]), all_bad) == "shifted"  # an offset
    assert issue(FACE * 1.3, all_bad) == "shifted"  # a box too large
    assert issue(FACE + np.array([0.9, 0.1]), all_bad) == "other_person"  # someone else
    assert issue(RNG.uniform(-1, 1, (12, 2)), all_bad) == "many_points"
    assert issue(FACE[::-1], all_bad, swap=12.0) == "swap"
    assert issue(FACE[::-1], all_bad, swap=-3.0) == "many_points"
    assert name_issue(np.array([30.0]), np.array([0.0]), np.array([True]), np.array([4.0]),
                      4.0, None, 0.1, "age") == "age"


def test_unflagged_samples_with_the_widest_uncertainty_are_hard() -> None:
    n = 100
    targets = np.repeat(FACE.reshape(1, -1), n, axis=0)
    log_odds = np.full((n, 12), GOOD)
    log_scale = np.full((n, 12), -3.0)
    log_scale[5] = -1.0  # the model is unsure about sample 5
    log_odds[9] = BAD  # sample 9's label is wrong everywhere (random points)
    targets[9] = RNG.uniform(-1, 1, 24)
    log_scale[9] = -0.5  # wide, but flagged: its issue is what is wrong with it
    log_odds[[12, 13]] = BAD  # two labels shifted as a whole
    targets[[12, 13]] = (FACE + np.array([0.08, 0.05])).reshape(-1)
    log_scale[12] = -0.5  # ... one on an image the model is unsure of: a plausible
    # shape the model placed elsewhere (FG-NET's profiles and infants) reads as hard
    out = name_issues(targets, np.repeat(FACE.reshape(1, -1), n, axis=0),
                      np.ones_like(targets, bool), log_odds, log_odds.max(axis=1), None,
                      log_scale, np.arange(n), "landmarks")
    assert out[5] == "hard" and out[9] == "many_points"
    assert out[12] == "hard" and out[13] == "shifted"
    assert {out[i] for i in range(n) if i not in (5, 9, 12, 13)} == {None}
