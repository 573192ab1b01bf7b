"""The method seam: what a robust training method is to the loop and the scorer.

A method (:class:`Method`, an ``nn.Module`` so ``.to(device)``, its parameters
and its state travel with the model) owns, for one training problem:

- the head it needs: a mean per target, and with ``predicts_scale`` a log scale
  per point (per landmark, or the one age) next to it;
- ``loss(out, target, weight)`` for a batch, ``weights(positions)`` for the
  per-dimension weights it wants on each training sample (DeepGUM's r / var);
- the hooks between epochs: ``start`` before the first epoch and ``after_epoch``
  after each (DeepGUM's E-step and the refresh of its residuals live here, not
  in the loop), with a :class:`FitContext` that evaluates training samples;
- ``unit_log_odds``: per point (landmark or age) the outlier log-odds of the
  stored label given the model's residuals and scales, and the method's raw
  statistic; :mod:`core.scoring` turns them into calibrated probabilities;
- its state: ``state_dict``/``load_state_dict`` (NumPy state through
  ``get_extra_state``, so checkpoints load with ``weights_only=True``).

Targets and residuals are in normalised units (landmarks: the input square mapped
to [-1, 1]; age: the label range mapped to [-1, 1]). ``weight`` carries the mask:
0 where a label is missing. The loop knows no method by name: the registry in
:mod:`core.robust` maps names to classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from core.robust.image_mixture import image_mixture
from core.robust.mixture import GaussianUniformMixture, landmark_log_odds, unit_of_dim

if TYPE_CHECKING:
    from core.training.config import TrainConfig

HIST_BINS = 20
LOG_SCALE_MIN, LOG_SCALE_MAX = -9.0, 2.0  # exp: 1e-4 .. 7 normalised units


@dataclass(frozen=True)
class Problem:
    """What is being regressed: ``n_dims`` outputs making ``n_points`` points
    (landmarks: 2 dimensions each; age: one point of one dimension), and for
    landmarks with left/right pairs the permutation that exchanges them."""

    task: str  # landmarks | age
    n_dims: int
    n_points: int
    flip_perm: tuple[int, ...] | None = None
    # faces (a frontal schema): the flip pairs as (keypoint on the image's left, partner)
    frontal_pairs: tuple[tuple[int, int], ...] | None = None

    @property
    def dims_per_point(self) -> int:
        return self.n_dims // self.n_points

    def point_of_dim(self) -> np.ndarray:
        return np.arange(self.n_dims) // self.dims_per_point

    def swap_dims(self) -> np.ndarray | None:
        """For each output dimension, the one that holds it once the label's left/right
        pairs are exchanged (None without pairs): ``y[..., swap_dims()]``."""
        if self.flip_perm is None or self.task != "landmarks":
            return None
        perm = np.asarray(self.flip_perm)
        if np.array_equal(perm, np.arange(len(perm))):
            return None
        d = self.dims_per_point
        return (perm[:, None] * d + np.arange(d)[None, :]).reshape(-1)


@dataclass(frozen=True)
class Output:
    """A batch of model outputs: the mean (B, D) and, for methods that predict it,
    the log of a scale per point (B, K) in normalised units."""

    mean: torch.Tensor
    log_scale: torch.Tensor | None = None

    def dim_scale(self, problem: Problem) -> torch.Tensor | None:
        """The predicted scale repeated per output dimension (B, D)."""
        if self.log_scale is None:
            return None
        return self.log_scale.exp().repeat_interleave(problem.dims_per_point, dim=1)


def split_output(raw: torch.Tensor, n_dims: int) -> Output:
    """The model's flat output (B, D [+ K]) as an :class:`Output` (log scales clamped)."""
    if raw.shape[1] == n_dims:
        return Output(raw)
    return Output(raw[:, :n_dims], raw[:, n_dims:].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX))


@dataclass(frozen=True)
class EStepInfo:
    """What one round of a method's between-epoch fit did (plain values)."""

    iterations: int
    inlier_fraction: float
    pi: np.ndarray  # (U,) inlier fraction per unit
    variance: np.ndarray  # (D,) inlier variance per output dimension (normalised units)
    width: np.ndarray  # (D,) uniform width per output dimension
    histogram: tuple[int, ...]  # responsibilities of observed units, HIST_BINS bins over [0, 1]
    stopped: bool = False


@dataclass(frozen=True)
class UnitScores:
    """Per point (N, K): outlier log-odds log(P(wrong) / P(right)) and the method's
    own raw statistic (higher = more suspect); NaN where the label is missing. Where
    the method judges left/right swaps: per sample (N,) the log-odds that the label's
    pairs are exchanged."""

    log_odds: np.ndarray
    statistic: np.ndarray
    swap_log_odds: np.ndarray | None = None
    # (N,) log-odds that the sample's label is wrong (the image-level mixture); None:
    # the worst point's log-odds stands for the sample (one point per sample)
    sample_log_odds: np.ndarray | None = None


class FitContext(Protocol):
    """What the loop offers a method between epochs (all arrays over the training
    samples, in the order of ``TrainData.train``)."""

    epoch: int  # epochs done so far (0 before the first)
    epochs: int
    warmup_epochs: int
    mask: np.ndarray  # (N, D) bool
    targets: np.ndarray  # (N, D) the stored labels, normalised
    inliers: np.ndarray  # (N,) bool: labels a reviewer confirmed or fixed (held as inliers)

    def evaluate(self, positions: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Eval-mode residuals (n, D) and log scales (n, K) or None of the training
        samples at ``positions`` (all when None)."""
        ...

    def should_stop(self) -> bool: ...


class Method(nn.Module):
    """The base: plain weights (ones), nothing fitted between epochs, and scores
    from a Gaussian-uniform mixture fitted on the final residuals."""

    name: ClassVar[str] = "base"
    predicts_scale: ClassVar[bool] = False  # the head also outputs a log scale per point
    description: ClassVar[str] = ""

    def __init__(self, problem: Problem, config: TrainConfig) -> None:
        super().__init__()
        self.problem = problem
        self.config = config

    # ------------------------------------------------------------------ training

    @property
    def n_dims(self) -> int:
        return self.problem.n_dims

    def weights(self, positions: np.ndarray) -> np.ndarray:
        """(B, D) float32 per-dimension weights of the training samples at ``positions``."""
        return np.ones((len(positions), self.n_dims), dtype=np.float32)

    def loss(self, out: Output, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def batch_targets(self, positions: np.ndarray, targets: np.ndarray, mask: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The targets (and their mask) the training samples at ``positions`` are
        trained on: their stored labels, unless the method reads a label otherwise
        (DeepGUM: a label it judges left/right swapped, with its pairs exchanged)."""
        return targets, mask

    def wants_training_residuals(self) -> bool:
        """Whether :meth:`observe_batch` should get each training batch's residuals."""
        return False

    def observe_batch(self, positions: np.ndarray, residuals: torch.Tensor,
                      log_scale: torch.Tensor | None) -> None:
        """A training batch's residuals against the targets of :meth:`batch_targets`,
        mapped back to the label frame (detached)."""

    def start(self, fit: FitContext) -> EStepInfo | None:
        """Before the first epoch of a fresh run."""
        return None

    def after_epoch(self, fit: FitContext) -> EStepInfo | None:
        """After each epoch (``fit.epoch`` epochs done); None when nothing was fitted."""
        return None

    def inlier_fraction(self) -> float | None:
        return None

    def histogram(self) -> tuple[int, ...] | None:
        return None

    def metrics(self) -> dict[str, Any]:
        """Numbers worth keeping with each epoch (JSON-ready)."""
        return {}

    # ------------------------------------------------------------------ scoring

    def unit_log_odds(self, res: np.ndarray, log_scale: np.ndarray | None, mask: np.ndarray,
                      fit_rows: np.ndarray, inliers: np.ndarray | None = None,
                      targets: np.ndarray | None = None) -> UnitScores:
        """Outlier log-odds per point for every sample (N, K) from its residuals
        ``res`` (N, D) (against the stored labels ``targets``) and predicted log
        scales (N, K) if any. The base fits a
        Gaussian-uniform mixture (one unit per point) on the ``fit_rows`` samples by
        EM from r = 1, with the inlier variances times the predicted scale squared
        where there is one, and a per-sample variance multiplier (capped at 1, see
        :meth:`GaussianUniformMixture.fit_sample_scales`) for landmarks. The raw
        statistic is each point's residual length over its median on ``fit_rows``."""
        mix = scoring_mixture(GaussianUniformMixture(
            unit_of_dim(self.n_dims, "landmark", self.problem.dims_per_point), 2.0, "diagonal"))
        scale = self.dim_variance(log_scale)
        mix.fit(res[fit_rows], mask[fit_rows], 20,
                scale=None if scale is None else scale[fit_rows],
                inliers=None if inliers is None else inliers[fit_rows])
        log_odds, sample = self._mixture_log_odds(mix, res, mask, fit_rows, scale, inliers)
        return UnitScores(log_odds, residual_ratio(res, mask, self.problem, fit_rows, log_scale),
                          sample_log_odds=sample)

    def dim_variance(self, log_scale: np.ndarray | None) -> np.ndarray | None:
        """Predicted log scales (N, K) as variance multipliers per dimension (N, D)."""
        if log_scale is None:
            return None
        return np.exp(2.0 * np.asarray(log_scale, np.float64))[:, self.problem.point_of_dim()]

    def _mixture_log_odds(self, mix: GaussianUniformMixture, res: np.ndarray, mask: np.ndarray,
                          fit_rows: np.ndarray, scale: np.ndarray | None,
                          inliers: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-landmark outlier log-odds (N, K) and per-sample ones (N,) from a fitted
        mixture: with one unit per landmark through the image-level layer
        (:func:`image_mixture`), else the mixture's own (sample: None)."""
        if self.problem.task != "landmarks":
            return mix.e_step(res, mask, scale)[1], None
        if scale is None and mix.n_units > 1:
            scale = mix.fit_sample_scales(res, mask, fit_rows)
        per_landmark = np.array_equal(mix.groups, self.problem.point_of_dim())
        if not per_landmark or self.problem.n_points < 2:
            return landmark_log_odds(mix, res, mask, scale=scale), None
        log_in, log_out, observed = mix.unit_log_densities(res, mask, scale)
        img = image_mixture(log_in, log_out, observed, fit_rows, inliers)
        return img.unit_log_odds, img.sample_log_odds


def scoring_mixture(mix: GaussianUniformMixture) -> GaussianUniformMixture:
    """``mix`` set up for scoring: its uniform spans the whole label range. A wrong
    label can be anywhere; fitted to the outliers' spread instead (as DeepGUM's
    training step does), on a clean set the uniform shrank to the width of the
    inliers' tail and 16 % of FG-NET's own faces were flagged (1.1 % spanning the
    range), at a small cost in recall on small displacements (ngo:0.1 per-landmark
    recall 0.865 -> 0.83, precision 0.948 -> 0.976)."""
    mix.full_width = True
    mix.width = mix.label_range.copy()
    return mix


def residual_ratio(res: np.ndarray, mask: np.ndarray, problem: Problem,
                   reference: np.ndarray, log_scale: np.ndarray | None = None) -> np.ndarray:
    """Per point (N, K): the residual's length (divided by the predicted scale where
    there is one) over its median on the ``reference`` rows (the training samples),
    so points that are harder to place do not crowd the top; NaN where missing."""
    n = res.shape[0]
    k = problem.n_points
    e = np.sqrt((np.where(mask, res, 0.0).reshape(n, k, -1) ** 2).sum(-1))
    m = mask.reshape(n, k, -1)[..., 0]
    if log_scale is not None:
        e = e / np.exp(np.asarray(log_scale, np.float64))
    e = np.where(m, e, np.nan)
    ref = e[reference]
    with np.errstate(all="ignore"):
        med = np.nanmedian(ref, axis=0) if len(ref) and np.isfinite(ref).any() else None
    med = np.ones(k) if med is None else np.where(np.isfinite(med) & (med > 0), med, 1.0)
    return e / med


def responsibility_histogram(r: np.ndarray, observed: np.ndarray) -> tuple[int, ...]:
    counts, _ = np.histogram(r[observed], bins=HIST_BINS, range=(0.0, 1.0))
    return tuple(int(c) for c in counts)


def batch_sigma(res: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-dimension robust scale 1.4826 * MAD of a batch's residuals (detached),
    ignoring missing labels (weight 0)."""
    r = res.detach().float().masked_fill(weight <= 0, float("nan"))
    med = torch.nanmedian(r, dim=0).values
    mad = torch.nanmedian((r - med).abs(), dim=0).values
    return torch.nan_to_num(1.4826 * mad, nan=1.0).clamp_min(1e-4)


def scaled_rho_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                    rho: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """mean_n sum_d w_nd sigma_d^2 rho((y_nd - f_nd) / sigma_d), sigma the batch's
    per-dimension MAD scale: a robust loss on standardised residuals, scaled back so
    its inlier part is (y - f)^2 / 2 whatever the units (Huber and Tukey)."""
    res = target - pred
    sigma = batch_sigma(res, weight)
    return (weight * rho(res / sigma) * sigma**2).sum(dim=1).mean()
