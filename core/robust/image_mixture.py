"""The image-level layer of the mixture: errors come by the sample. A label is
clean (no outlier unit) or has errors (each unit an outlier at its own rate),
fitted by EM over the samples from each unit's inlier and outlier densities
(:meth:`core.robust.mixture.GaussianUniformMixture.unit_log_densities`); a
sample's probability of being wrong is that of at least one outlier unit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.robust.mixture import PI_CLIP, log1mexp

IMAGE_PRIOR_CLIP = (1e-4, 1.0 - 1e-4)
CLEAN_RATE = 1e-8  # outlier rate of a unit in a clean sample: none, kept finite
IMAGE_ITERATIONS = 30


@dataclass(frozen=True)
class ImageMixture:
    """The image-level layer of the mixture (see :func:`image_mixture`)."""

    unit_log_odds: np.ndarray  # (N, U) marginal outlier log-odds of each unit
    sample_log_odds: np.ndarray  # (N,) log-odds that the sample's label has a wrong unit
    prior: float  # share of samples with wrong units
    clean_rate: float  # outlier rate of a unit in a clean sample
    rate: np.ndarray  # (U,) outlier rate of each unit in a sample with errors


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def _any_unit_log_odds(lp0: np.ndarray, lp1: np.ndarray, lo0: np.ndarray, lo1: np.ndarray,
                       observed: np.ndarray) -> np.ndarray:
    """log P(some unit is an outlier) / P(none is), with the sample's class
    posteriors ``lp0``/``lp1`` (log, (N,)) and each unit's outlier log-odds in either
    class ((N, U)). Exact in log space; where P(none) rounds to 1 its complement is
    taken to first order (the sum of the units' outlier probabilities), so the
    result stays finite and keeps the order of clean samples."""
    a0 = np.where(observed, _log_sigmoid(-lo0), 0.0).sum(axis=1)  # log P(no outlier | clean)
    a1 = np.where(observed, _log_sigmoid(-lo1), 0.0).sum(axis=1)
    log_none = np.logaddexp(lp0 + a0, lp1 + a1)
    neg = np.where(observed, _log_sigmoid(lo0), -np.inf)
    pos = np.where(observed, _log_sigmoid(lo1), -np.inf)
    first_order = np.logaddexp(lp0 + _logsumexp_rows(neg), lp1 + _logsumexp_rows(pos))
    with np.errstate(divide="ignore"):
        exact = log1mexp(np.minimum(log_none, 0.0))
    log_some = np.where(log_none > -1e-8, first_order, exact)
    return log_some - log_none


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    top = np.max(a, axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(a - safe[:, None]).sum(axis=1))


def image_mixture(log_in: np.ndarray, log_out: np.ndarray, observed: np.ndarray,
                  fit_rows: np.ndarray, inliers: np.ndarray | None = None,
                  iterations: int = IMAGE_ITERATIONS) -> ImageMixture:
    """Errors come by the sample: a sample's label is clean (no outlier unit) or has
    errors (unit u an outlier with rate ``theta_u``), the latter with prior ``rho``.
    Given each unit's inlier and outlier log densities (N, U), EM on the
    ``fit_rows`` samples fits rho and theta. A sample's probability of being wrong
    is that of at least one outlier unit; each unit's outlier probability is its
    marginal over the two kinds of sample.

    Without this layer every unit of every sample shares one outlier rate: on a set
    where 10 % of faces have their left/right pairs exchanged, that rate (about 9 %
    of landmarks) made a clean face's hardest point look wrong: 98 % of faces had a
    point over one half, and the image probability's calibration error was 0.39
    (0.02 with it). A clean class that may hold outliers too (a fitted rate) is not
    identifiable when errors are independent per unit (it then told a 4-point
    label with one point hundreds of sigmas off "80 % wrong"), so it holds none.
    ``inliers`` (N,) bool: samples a reviewer confirmed or fixed, held as clean
    while fitting (their probability is still computed)."""
    lin = np.where(observed, log_in, 0.0)
    lout = np.where(observed, log_out, 0.0)
    fit = np.asarray(fit_rows)
    held = np.zeros(len(lin), bool) if inliers is None else np.asarray(inliers, bool)
    rho, eps = 0.5, CLEAN_RATE
    theta = np.full(lin.shape[1], 0.2)
    for _ in range(iterations):
        lo0 = math.log(eps) + lout - (math.log1p(-eps) + lin)  # unit outlier log-odds, clean
        lo1 = np.log(theta) + lout - (np.log1p(-theta) + lin)  # ... in a sample with errors
        l0 = np.where(observed, math.log1p(-eps) + lin + np.logaddexp(0.0, lo0), 0.0).sum(1)
        l1 = np.where(observed, np.log1p(-theta) + lin + np.logaddexp(0.0, lo1), 0.0).sum(1)
        s = math.log(rho) - math.log1p(-rho) + l1 - l0
        p1 = np.where(held, 0.0, 1.0 / (1.0 + np.exp(-np.clip(s, -700, 700))))
        o1 = np.exp(_log_sigmoid(lo1))
        w1 = p1[fit, None] * observed[fit]
        rho = float(np.clip(p1[fit].mean(), *IMAGE_PRIOR_CLIP)) if len(fit) else rho
        theta = np.clip(np.where(w1.sum(0) > 0, (w1 * o1[fit]).sum(0) / np.maximum(w1.sum(0),
                                                                                   1e-300), theta),
                        *PI_CLIP)
    lo0 = math.log(eps) + lout - (math.log1p(-eps) + lin)
    lo1 = np.log(theta) + lout - (np.log1p(-theta) + lin)
    l0 = np.where(observed, math.log1p(-eps) + lin + np.logaddexp(0.0, lo0), 0.0).sum(1)
    l1 = np.where(observed, np.log1p(-theta) + lin + np.logaddexp(0.0, lo1), 0.0).sum(1)
    s = math.log(rho) - math.log1p(-rho) + l1 - l0  # held samples too: shown, not fitted
    lp1, lp0 = _log_sigmoid(s)[:, None], _log_sigmoid(-s)[:, None]
    log_out_p = np.logaddexp(lp0 + _log_sigmoid(lo0), lp1 + _log_sigmoid(lo1))
    log_in_p = np.logaddexp(lp0 + _log_sigmoid(-lo0), lp1 + _log_sigmoid(-lo1))
    unit = np.where(observed, log_out_p - log_in_p, np.nan)
    sample = _any_unit_log_odds(lp0[:, 0], lp1[:, 0], lo0, lo1, observed)
    sample = np.where(observed.any(axis=1), sample, np.nan)
    return ImageMixture(unit, sample, rho, eps, theta)
