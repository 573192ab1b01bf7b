"""The baseline criteria: Huber, Tukey (MAD-scaled), Barron (adaptive), L2."""

from __future__ import annotations

import math

import pytest
import torch

from core.robust import METHODS, make_method
from core.robust.barron import Barron, log_partition, rho
from core.robust.base import Method, Output, Problem, batch_sigma
from core.training import TrainConfig


def make_criterion(name: str, n_dims: int) -> Method:
    task = "landmarks" if n_dims % 2 == 0 else "age"
    return make_method(name, Problem(task, n_dims, n_dims // 2 if task == "landmarks" else 1),
                       TrainConfig())


def test_every_method_builds_and_unknown_is_refused() -> None:
    for m in METHODS:
        assert make_criterion(m, 4).name == m
    with pytest.raises(ValueError, match="unknown method"):
        make_criterion("median", 4)


def test_batch_sigma_is_mad_scaled_and_ignores_missing() -> None:
    res = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [100.0, 9.0]])
    w = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    s = batch_sigma(res, w)
    # dim 0: median 2.5 (torch takes the lower middle: 2), MAD of |r - 2| = 1
    assert float(s[0]) == pytest.approx(1.4826)
    assert float(s[1]) == pytest.approx(1e-4)  # all zero residuals: the floor


def test_tukey_has_no_gradient_beyond_c() -> None:
    crit = make_criterion("tukey", 1)
    target = torch.tensor([[0.0], [0.1], [-0.1], [0.05], [50.0]])
    pred = torch.zeros(5, 1, requires_grad=True)
    crit.loss(Output(pred), target, torch.ones(5, 1)).backward()
    assert pred.grad is not None
    assert float(pred.grad[4, 0]) == 0.0  # far beyond C scale units
    assert float(pred.grad[1, 0]) != 0.0


def test_huber_is_quadratic_inside_and_linear_outside() -> None:
    crit = make_criterion("huber", 1)
    target = torch.tensor([[0.0], [1.0], [-1.0], [0.5], [-0.5], [30.0]])
    pred = torch.zeros(6, 1, requires_grad=True)
    crit.loss(Output(pred), target, torch.ones(6, 1)).backward()
    assert pred.grad is not None
    g_far = abs(float(pred.grad[5, 0]))
    # linear part: gradient = delta * sigma / N, bounded, smaller than a quadratic one would be
    assert g_far < 30.0 / 6


def test_barron_partition_matches_known_limits() -> None:
    # alpha -> 2: a Gaussian, Z = sqrt(2 pi); alpha -> 0: Z = pi sqrt(2) (Cauchy-like)
    assert float(log_partition(torch.tensor([1.999]))) == pytest.approx(math.log(math.sqrt(2 * math.pi)), abs=0.01)
    assert float(log_partition(torch.tensor([0.001]))) == pytest.approx(math.log(math.pi * math.sqrt(2)), abs=0.01)
    # rho(x, 1) is the pseudo-Huber sqrt(x^2 + 1) - 1
    x = torch.tensor([0.0, 1.0, 3.0])
    assert torch.allclose(rho(x, torch.tensor(1.0)), torch.sqrt(x**2 + 1) - 1, atol=1e-6)


def test_barron_learns_its_shape_and_scale() -> None:
    crit = make_criterion("barron", 2)
    assert isinstance(crit, Barron)
    assert len(list(crit.parameters())) == 2
    pred = torch.zeros(8, 2)
    target = torch.randn(8, 2) * 0.05
    loss = crit.loss(Output(pred), target, torch.ones(8, 2))
    loss.backward()
    assert all(p.grad is not None for p in crit.parameters())
    state = crit.state_dict()
    other = make_criterion("barron", 2)
    assert isinstance(other, Barron)
    other.load_state_dict(state)
    assert torch.equal(other.alpha(), crit.alpha())
