"""Detection and task metrics against hand-computed values (and scikit-learn where installed)."""

from __future__ import annotations

import numpy as np
import pytest

from core.metrics import (
    auprc,
    auroc,
    ece,
    failure_rate,
    mae,
    nme,
    paired_wilcoxon,
    point_errors,
    precision_recall,
    reliability,
    summarise,
)
from core.robust.base import Problem, residual_ratio
from core.scoring import flags, outre_scores, sample_flagged


def test_auroc_by_hand() -> None:
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs won 1 + 1 + 0 + 1 = 3 of 4
    assert auroc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)
    # a tie counts a half
    assert auroc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert auroc([1.0, 2.0], [0, 0]) is None
    # NaN scores (missing landmarks) are left out; infinities rank like numbers
    assert auroc([np.inf, np.nan, -np.inf], [1, 0, 0]) == pytest.approx(1.0)


def test_auprc_by_hand() -> None:
    # ranks: 0.9 (pos) P=1 R=.5; 0.5 (neg); 0.4 (pos) P=2/3 R=1 -> .5*1 + .5*2/3
    assert auprc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5 + 1 / 3)


def test_against_sklearn_on_random_data() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    s = rng.normal(size=500) + y
    s[:50] = np.round(s[:50])  # some ties
    assert auroc(s, y) == pytest.approx(metrics.roc_auc_score(y, s))
    assert auprc(s, y) == pytest.approx(metrics.average_precision_score(y, s))


def test_precision_recall() -> None:
    assert precision_recall([1, 1, 0, 0], [1, 0, 1, 0]) == (0.5, 0.5)
    assert precision_recall([0, 0], [1, 0]) == (None, 0.0)


def test_task_errors() -> None:
    pred = np.array([[[3.0, 4.0], [10.0, 10.0]]])
    true = np.array([[[0.0, 0.0], [np.nan, np.nan]]])
    e = point_errors(pred, true, 100.0)
    assert e[0, 0] == pytest.approx(0.05) and np.isnan(e[0, 1])
    assert nme(e) == pytest.approx(0.05)
    assert failure_rate(np.array([0.01, 0.06, 0.05, np.nan])) == pytest.approx(1 / 3)
    assert mae([1, 5], [2, 2]) == pytest.approx(2.0)


def test_summary_and_wilcoxon() -> None:
    s = summarise([0.9, None, 0.7, 0.8])
    assert s == {"median": 0.8, "low": 0.7, "high": 0.9, "n": 3}
    rng = np.random.default_rng(0)
    a = rng.random(50)
    test = paired_wilcoxon(a, a + 0.1)
    assert test is not None and test["a_better"] and test["p_value"] < 1e-6
    assert paired_wilcoxon(a[:5], a[:5] + 1) is None


def test_residual_scores_and_flags() -> None:
    res = np.array([[0.1, 0.0], [0.2, 0.0], [0.3, 0.0], [3.0, 0.0]])
    mask = np.ones_like(res, bool)
    s = residual_ratio(res, mask, Problem("landmarks", 2, 1), np.arange(4))
    # landmark residual lengths 0.1, 0.2, 0.3, 3.0 over their median 0.25
    np.testing.assert_allclose(s[:, 0], [0.4, 0.8, 1.2, 12.0])
    # with a predicted scale per point the lengths are divided by it first
    s = residual_ratio(res, mask, Problem("landmarks", 2, 1), np.arange(4),
                       np.log(np.array([[1.0], [2.0], [1.0], [10.0]])))
    np.testing.assert_allclose(s[:, 0], np.array([0.1, 0.1, 0.3, 0.3]) / 0.2)
    assert flags(np.array([-1.0, 0.5, np.nan])).tolist() == [False, True, False]


def test_one_flag_rule_for_samples() -> None:
    assert sample_flagged(0.01) and not sample_flagged(-0.01) and not sample_flagged(0.0)
    assert not sample_flagged(None) and not sample_flagged(float("nan"))
    assert sample_flagged(float("inf"))


def test_outre_ranks_the_planted_outlier_first() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 60, 200)
    pred = y + rng.normal(0, 2, 200)
    y[7] = pred[7] + 40
    assert int(np.argmax(outre_scores(y, pred))) == 7


def test_reliability_and_ece_by_hand() -> None:
    probs = [0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 0.55, np.nan]
    truth = [False, False, False, True, True, True, False, True]
    rel = reliability(probs, truth, bins=10)
    assert [(b["low"], b["count"]) for b in rel] == [(0.0, 4), (0.5, 1), (0.9, 2)]
    assert rel[0]["wrong_share"] == 0.25 and rel[2]["mean_prob"] == pytest.approx(0.95)
    # |0.05 - 0.25| * 4 + |0.55 - 0| * 1 + |0.95 - 1| * 2, over 7
    assert ece(probs, truth, bins=10) == pytest.approx((0.8 + 0.55 + 0.1) / 7)
    assert ece([], []) is None
