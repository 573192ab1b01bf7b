"""The Gaussian-uniform mixture on regression residuals (DeepGUM, Lathuilière et
al., ECCV 2018), as plain float64 NumPy.

Every unit u (a whole sample, one landmark's (x, y) pair, or one output dimension)
of every sample n is an inlier with probability ``pi_u`` (residual drawn from a
zero-mean Gaussian with per-dimension variance ``var_d``, optionally times a
per-sample multiplier) or an outlier (residual uniform, density
``g_d = 1 / width_d`` per dimension). EM on training residuals fits it; the
DeepGUM method (``core.robust.deepgum``) trains the network with its
responsibilities, and every method's scorer (``Method.unit_log_odds``) uses it
to turn residuals into outlier log-odds.

All maths is in log space: a 136-dimensional Gaussian density underflows, and in
float64 ``r`` rounds to exactly 0 or 1 for clear cases, so outlier scores are
log-odds ``log((1 - r) / r)`` computed as the difference of the two log joint
densities. Missing dimensions (mask False) carry no weight in either step and
are never flagged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp

UNITS = ("landmark", "sample", "dimension")
VARIANCES = ("diagonal", "isotropic")
LOG_2PI = math.log(2.0 * math.pi)
PI_CLIP = (1e-4, 1.0 - 1e-4)
MIN_VAR = 1e-10
# The least inlier share pi a unit may have. A mixture in which most labels are wrong
# cannot be told from one in which the "outliers" are the right labels, so the tool
# assumes most labels are right, and this keeps EM from talking itself out of that:
# on residuals that look uniform (a network that has not learnt yet: a DeepLabCut
# project's 81 frames) pi fell from 0.5 to 0.005 in 50 epochs, every loss weight with
# it, and the network never learnt (skill 0.13-0.46 and 1-37 % of the clean frames
# flagged, against 0.75-0.86 and 5-14 % with this floor). On FG-NET it seldom binds
# (seed 0: ngo:0.3 AUROC 0.9899 against 0.9900, swap:0.5 1.000 either way).
MIN_INLIER_SHARE = 0.5
# Strength of the prior that pulls a sample's inlier-variance multiplier towards 1,
# in pseudo-observations (output dimensions): 16 = as much as 8 landmarks of evidence.
# On FG-NET the ranking was flat from 8 to 34 (see fit_sample_scales).
SAMPLE_SCALE_PRIOR = 16.0


def unit_of_dim(n_dims: int, unit: str, dims_per_landmark: int = 2) -> np.ndarray:
    """For each output dimension, the index of the mixture unit it belongs to."""
    if unit == "landmark":
        if n_dims % dims_per_landmark:
            raise ValueError(f"{n_dims} outputs do not split into landmarks of {dims_per_landmark}")
        return np.arange(n_dims) // dims_per_landmark
    if unit == "sample":
        return np.zeros(n_dims, dtype=np.int64)
    if unit == "dimension":
        return np.arange(n_dims)
    raise ValueError(f"unknown mixture unit {unit!r} (expected one of {', '.join(UNITS)})")


def log1mexp(a: np.ndarray) -> np.ndarray:
    """log(1 - exp(a)) for a <= 0, accurate near both ends (Maechler 2012)."""
    a = np.minimum(a, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(a > -math.log(2.0), np.log(-np.expm1(a)), np.log1p(-np.exp(a)))


@dataclass
class EMResult:
    """What one EM pass produced (plain values: safe to hand to another thread)."""

    iterations: int
    inlier_fraction: float  # mean responsibility over observed units
    pi: np.ndarray  # (U,)
    variance: np.ndarray  # (D,)
    width: np.ndarray  # (D,) width of the uniform, in residual units
    stopped: bool = False


class GaussianUniformMixture:
    """The mixture state and its E- and M-steps.

    ``groups[d]`` is the unit of output dimension d; ``label_range[d]`` bounds the
    uniform's width (the largest residual a label in range can have).
    """

    def __init__(self, groups: np.ndarray, label_range: np.ndarray | float,
                 variance: str = "diagonal", pi_init: float = 0.9) -> None:
        if variance not in VARIANCES:
            raise ValueError(f"unknown variance model {variance!r} (expected diagonal or isotropic)")
        self.groups = np.asarray(groups, dtype=np.int64)
        self.n_dims = len(self.groups)
        self.n_units = int(self.groups.max()) + 1
        self.assign = np.zeros((self.n_dims, self.n_units))  # (D, U) one-hot
        self.assign[np.arange(self.n_dims), self.groups] = 1.0
        self.label_range = np.broadcast_to(np.asarray(label_range, dtype=np.float64),
                                           (self.n_dims,)).copy()
        self.variance_model = variance
        self.pi_init = pi_init
        self.pi = np.full(self.n_units, pi_init)
        self.var = np.ones(self.n_dims)
        self.width = self.label_range.copy()
        self.r: np.ndarray | None = None  # (N, U) responsibilities of the training samples
        self.fitted = False
        # the uniform spans the label range instead of matching the outliers' spread
        self.full_width = False

    # ------------------------------------------------------------------ densities

    def log_joint(self, res: np.ndarray, mask: np.ndarray, scale: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log pi N(d; 0, S), log (1 - pi) g, observed) per unit, each (N, U); with
        ``scale`` the inlier variances are multiplied: (N,) one factor per sample, or
        (N, D) one per sample and dimension (a predicted uncertainty, squared)."""
        res = np.asarray(res, dtype=np.float64)
        m = np.asarray(mask, dtype=bool) & np.isfinite(res)
        d2 = np.where(m, res, 0.0) ** 2
        var = self.var if scale is None else self.var[None, :] * _per_dim(scale)
        ll_dim = np.where(m, -0.5 * (LOG_2PI + np.log(var) + d2 / var), 0.0)
        lg_dim = np.where(m, -np.log(self.width), 0.0)
        observed = (m.astype(np.float64) @ self.assign) > 0
        log_in = np.log(self.pi) + ll_dim @ self.assign
        log_out = np.log1p(-self.pi) + lg_dim @ self.assign
        return log_in, log_out, observed

    def unit_log_densities(self, res: np.ndarray, mask: np.ndarray,
                           scale: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log N(d; 0, S), log g, observed) per unit, each (N, U): the two
        components' densities without their priors (see :func:`image_mixture`)."""
        log_in, log_out, observed = self.log_joint(res, mask, scale)
        return log_in - np.log(self.pi), log_out - np.log1p(-self.pi), observed

    def e_step(self, res: np.ndarray, mask: np.ndarray, scale: np.ndarray | None = None,
               inliers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Responsibilities r (N, U) and outlier log-odds log((1 - r) / r) (N, U).
        Unobserved units get r = 1 and log-odds NaN. ``scale``: see :meth:`log_joint`.
        ``inliers`` (N,) bool: samples known to be right (a reviewer confirmed or fixed
        them) get r = 1 (their log-odds are still computed)."""
        log_in, log_out, observed = self.log_joint(res, mask, scale)
        log_norm = logsumexp(np.stack([log_in, log_out]), axis=0)
        r = np.where(observed, np.exp(log_in - log_norm), 1.0)
        if inliers is not None:
            r[np.asarray(inliers, dtype=bool)] = 1.0
        log_odds = np.where(observed, log_out - log_in, np.nan)
        return r, log_odds

    def m_step(self, res: np.ndarray, mask: np.ndarray, r: np.ndarray,
               scale: np.ndarray | None = None) -> None:
        """Update pi, the variances and the uniform widths from responsibilities r (N, U).
        With ``scale`` (see :meth:`log_joint`) the variances are those of the residuals
        divided by the square root of their scale; the uniform stays in residual units."""
        res = np.asarray(res, dtype=np.float64)
        m = np.asarray(mask, dtype=bool) & np.isfinite(res)
        d = np.where(m, res, 0.0)
        sc = None if scale is None else np.broadcast_to(_per_dim(scale), d.shape)
        dz = d if sc is None else d / np.sqrt(sc)
        observed = (m.astype(np.float64) @ self.assign) > 0
        n_obs = observed.sum(axis=0)
        pi = np.where(n_obs > 0, (r * observed).sum(axis=0) / np.maximum(n_obs, 1), self.pi)
        self.pi = np.clip(pi, MIN_INLIER_SHARE, PI_CLIP[1])

        w_in = r[:, self.groups] * m  # (N, D)
        if self.variance_model == "diagonal":
            num, den = (w_in * dz**2).sum(axis=0), w_in.sum(axis=0)
        else:  # one variance per unit, shared by its dimensions
            num = ((w_in * dz**2).sum(axis=0) @ self.assign)[self.groups]
            den = (w_in.sum(axis=0) @ self.assign)[self.groups]
        self.var = np.where(den > 0, num / np.maximum(den, 1e-300), self.var)
        self.var = np.maximum(self.var, MIN_VAR)

        w_out = (1.0 - r)[:, self.groups] * m
        tot = w_out.sum(axis=0)
        safe = np.maximum(tot, 1e-300)
        c1 = (w_out * d).sum(axis=0) / safe
        c2 = (w_out * d**2).sum(axis=0) / safe
        width = 2.0 * np.sqrt(3.0 * np.maximum(c2 - c1**2, 0.0))
        # Clamp to the label range; never narrower than the inlier Gaussian's
        # equal-variance uniform, or the "outlier" density would swallow the inliers.
        typical = 1.0 if sc is None else np.median(np.where(m, sc, np.nan), axis=0)
        typical = np.where(np.isfinite(typical), typical, 1.0)
        floor = 2.0 * np.sqrt(3.0 * self.var * typical)
        width = np.where(tot > 1e-9, width, self.label_range)
        self.width = np.clip(width, np.minimum(floor, self.label_range), self.label_range)
        if self.full_width:
            self.width = self.label_range.copy()

    # ------------------------------------------------------------------ EM

    def fit(self, res: np.ndarray, mask: np.ndarray, iterations: int = 1,
            should_stop: Callable[[], bool] | None = None, scale: np.ndarray | None = None,
            inliers: np.ndarray | None = None) -> EMResult:
        """EM on training residuals: each iteration an E-step then an M-step, then a
        final E-step so ``self.r`` matches the parameters. The first call starts from
        r = 1 (plain least squares): variances from all residuals, the uniform over the
        label range, pi = ``pi_init``. ``scale`` and ``inliers``: see :meth:`e_step`."""
        if not self.fitted:
            r0 = np.ones((res.shape[0], self.n_units))
            self.m_step(res, mask, r0, scale)
            self.pi = np.full(self.n_units, self.pi_init)
            self.width = self.label_range.copy()
            self.fitted = True
        done, stopped = 0, False
        for _ in range(iterations):
            if should_stop is not None and should_stop():
                stopped = True
                break
            r, _ = self.e_step(res, mask, scale, inliers)
            self.m_step(res, mask, r, scale)
            done += 1
        self.r, _ = self.e_step(res, mask, scale, inliers)
        return EMResult(done, self.inlier_fraction(mask), self.pi.copy(), self.var.copy(),
                        self.width.copy(), stopped)

    def fit_sample_scales(self, res: np.ndarray, mask: np.ndarray, fit_rows: np.ndarray,
                          iterations: int = 5, prior: float = SAMPLE_SCALE_PRIOR,
                          max_scale: float = 1.0, base: np.ndarray | None = None) -> np.ndarray:
        """Per-sample multipliers h (N,) of the inlier variances, fitted by EM with pi
        and the uniforms held: the network places some faces far better than others,
        and a displacement that is ordinary on the average face is a clear error on
        one whose other points it places closely. Each iteration: r under variances
        h_n S; h_n = (prior + sum_d r_nd d_nd^2 / S_d) / (prior + sum_d r_nd), the
        inlier-weighted mean squared standardised residual of the sample shrunk
        towards 1 by ``prior`` pseudo-observations (a sample with few points stays
        near 1), at most ``max_scale``; then S from the ``fit_rows`` (training)
        samples' residuals divided by their h. Use :meth:`e_step` with ``scale=h``.

        ``max_scale`` is 1 on purpose: h is fitted on the sample's own labels, so an
        error that moves every point of an image a few sigmas (an offset or a box
        mistake) would raise its h and hide itself. Capped at 1, h only makes an
        image the network finds easy stricter, never a hard one laxer. A lever
        for Gaussian-displacement noise: on FG-NET ngo:0.3 this raised the per-landmark AUROC from 0.9767 to 0.979
        (median of 3 seeds; 0.980 uncapped).

        ``base`` (N, D): variance multipliers the sample already has (a predicted
        scale, squared); h then multiplies them, and the E-step uses ``base * h``."""
        res = np.asarray(res, dtype=np.float64)
        m = np.asarray(mask, dtype=bool) & np.isfinite(res)
        d2 = np.where(m, res, 0.0) ** 2
        b = None if base is None else _per_dim(base)
        if b is not None:  # a missing point's scale may be anything, NaN too
            with np.errstate(all="ignore"):
                d2 = np.where(m, d2 / b, 0.0)
        h = np.ones(len(res))
        for _ in range(iterations):
            r, _ = self.e_step(res, mask, h if b is None else b * h[:, None])
            w = r[:, self.groups] * m
            h = np.minimum((prior + (w * d2 / self.var).sum(axis=1)) / (prior + w.sum(axis=1)),
                           max_scale)
            fw, fd = w[fit_rows], d2[fit_rows] / h[fit_rows, None]
            num, den = (fw * fd).sum(axis=0), fw.sum(axis=0)
            if self.variance_model == "isotropic":
                num, den = (num @ self.assign)[self.groups], (den @ self.assign)[self.groups]
            self.var = np.maximum(np.where(den > 0, num / np.maximum(den, 1e-300), self.var), MIN_VAR)
        return h

    def inlier_fraction(self, mask: np.ndarray) -> float:
        if self.r is None:
            return 1.0
        observed = (np.asarray(mask, dtype=np.float64) @ self.assign) > 0
        return float(self.r[observed].mean()) if observed.any() else 1.0

    def weights(self, index: np.ndarray) -> np.ndarray:
        """Per-dimension loss weights r_nd / var_d / mean_d(1 / var_d) for training
        samples ``index`` (B, D), float32; all ones before the first fit."""
        if self.r is None:
            return np.ones((len(index), self.n_dims), dtype=np.float32)
        inv = 1.0 / self.var
        w = self.r[index][:, self.groups] * (inv / inv.mean())
        return w.astype(np.float32)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, torch.Tensor | str | float | bool]:
        """Tensors and plain values only (loads with ``torch.load(weights_only=True)``)."""
        out: dict[str, torch.Tensor | str | float | bool] = {
            "groups": torch.from_numpy(self.groups.copy()),
            "label_range": torch.from_numpy(self.label_range.copy()),
            "variance_model": self.variance_model,
            "pi_init": float(self.pi_init),
            "pi": torch.from_numpy(self.pi.copy()),
            "var": torch.from_numpy(self.var.copy()),
            "width": torch.from_numpy(self.width.copy()),
            "fitted": bool(self.fitted),
        }
        if self.r is not None:
            out["r"] = torch.from_numpy(self.r.copy())
        return out

    @classmethod
    def from_state_dict(cls, state: dict) -> GaussianUniformMixture:
        mix = cls(state["groups"].numpy(), state["label_range"].numpy(),
                  str(state["variance_model"]), float(state["pi_init"]))
        mix.pi = state["pi"].numpy().astype(np.float64)
        mix.var = state["var"].numpy().astype(np.float64)
        mix.width = state["width"].numpy().astype(np.float64)
        mix.fitted = bool(state["fitted"])
        mix.r = state["r"].numpy().astype(np.float64) if "r" in state else None
        return mix

    def summary(self) -> dict[str, float]:
        return {
            "pi_mean": float(self.pi.mean()),
            "pi_min": float(self.pi.min()),
            "pi_max": float(self.pi.max()),
            "var_median": float(np.median(self.var)),
            "std_median": float(np.sqrt(np.median(self.var))),
            "width_median": float(np.median(self.width)),
        }


def _per_dim(scale: np.ndarray) -> np.ndarray:
    """A variance multiplier as (N, D) or (N, 1): one per sample becomes a column."""
    s = np.asarray(scale, dtype=np.float64)
    return s[:, None] if s.ndim == 1 else s


def centred(res: np.ndarray, mask: np.ndarray, dims_per_point: int = 2) -> np.ndarray:
    """Residuals (N, D) less each sample's mean residual along each axis (x, y)
    over its observed points: what is left once the whole label's offset from the
    prediction is taken out. Missing entries stay as they were."""
    r = np.asarray(res, dtype=np.float64)
    m = np.asarray(mask, dtype=bool) & np.isfinite(r)
    out = r.copy()
    for axis in range(dims_per_point):
        cols = slice(axis, None, dims_per_point)
        count = m[:, cols].sum(axis=1, keepdims=True)
        mean = np.where(m[:, cols], r[:, cols], 0.0).sum(axis=1, keepdims=True) \
            / np.maximum(count, 1)
        out[:, cols] = np.where(m[:, cols], r[:, cols] - mean, r[:, cols])
    return out


def landmark_log_odds(mix: GaussianUniformMixture, res: np.ndarray, mask: np.ndarray,
                      dims_per_landmark: int = 2, scale: np.ndarray | None = None) -> np.ndarray:
    """Outlier log-odds per landmark (N, K) whatever the mixture's unit.

    Per-landmark units: the unit's own log-odds. Per-dimension units: the landmark is
    an outlier unless all its dimensions are inliers, log((1 - prod r) / prod r).
    Per-sample units: the landmark's dimensions scored under the sample unit's pi,
    Gaussian and uniform (the marginal of the sample mixture on that landmark)."""
    n, n_dims = res.shape
    k = n_dims // dims_per_landmark
    lm_of_dim = np.arange(n_dims) // dims_per_landmark
    if np.array_equal(mix.groups, lm_of_dim):
        return mix.e_step(res, mask, scale)[1]
    m = np.asarray(mask, dtype=bool) & np.isfinite(res)
    lm_assign = np.zeros((n_dims, k))
    lm_assign[np.arange(n_dims), lm_of_dim] = 1.0
    observed = (m.astype(np.float64) @ lm_assign) > 0
    if np.array_equal(mix.groups, np.arange(n_dims)):
        log_in, log_out, obs = mix.log_joint(res, mask, scale)
        log_r = np.where(obs, log_in - np.logaddexp(log_in, log_out), 0.0)  # (N, D)
        log_r_lm = log_r @ lm_assign
        out = log1mexp(log_r_lm) - log_r_lm
        return np.where(observed, out, np.nan)
    d2 = np.where(m, res, 0.0) ** 2
    var = mix.var if scale is None else mix.var[None, :] * _per_dim(scale)
    ll = np.where(m, -0.5 * (LOG_2PI + np.log(var) + d2 / var), 0.0) @ lm_assign
    lg = np.where(m, -np.log(mix.width), 0.0) @ lm_assign
    pi = mix.pi[mix.groups[0]]
    out = (math.log1p(-pi) + lg) - (math.log(pi) + ll)
    return np.where(observed, out, np.nan)
