"""What a training run tells its callbacks: frozen dataclasses of plain numbers and
NumPy copies, safe to hand to a GUI thread."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StatusEvent:
    run_id: int
    status: str  # preparing | running | paused | stopped | finished | failed
    message: str = ""


@dataclass(frozen=True)
class BatchProgress:
    run_id: int
    epoch: int  # 0-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int
    loss: float
    images_per_s: float


@dataclass(frozen=True)
class EStepEvent:
    run_id: int
    epoch: int  # the epoch whose weights it sets (0-based)
    iterations: int
    inlier_fraction: float
    pi: np.ndarray  # (U,) inlier fraction per unit
    variance: np.ndarray  # (D,) inlier variance per output dimension (normalised units)
    width: np.ndarray  # (D,) uniform width per output dimension
    histogram: tuple[int, ...]  # responsibilities of the observed training units, 20 bins over [0, 1]
    seconds: float


@dataclass(frozen=True)
class EpochEvent:
    run_id: int
    epoch: int  # 0-based
    epochs: int
    train_loss: float
    val_error: float | None  # landmarks: mean error / image size; age: MAE in years
    inlier_fraction: float | None
    images_per_s: float  # training pass only
    seconds: float  # the whole epoch, evaluation and EM included
    eval_seconds: float  # the validation pass
    estep_seconds: float  # the method's between-epoch fit, and the passes that fed it
    histogram: tuple[int, ...] | None  # responsibilities, 20 bins over [0, 1] (DeepGUM)
    pi_mean: float | None  # mixture summary (DeepGUM): mean inlier fraction over units
    std_median: float | None  # median inlier standard deviation, normalised units ([-1, 1] square)
    # throughput (core.training.throughput): share of the training pass spent waiting
    # for batches, and on CUDA the GPU's mean utilisation (with pynvml) and peak memory
    data_wait_share: float | None = None
    gpu_util: float | None = None
    gpu_memory_mb: float | None = None
    processes: int = 1  # of a distributed run (torchrun)


@dataclass(frozen=True)
class ScoresEvent:
    run_id: int
    epoch: int
    n_samples: int
    n_flagged: int  # samples the flag rule (core.flags) calls wrong
    top: tuple[tuple[int, float], ...]  # (sample id, score) of the 20 highest
    seconds: float = 0.0  # the scoring: the evaluation pass over every sample, the rows, the write


class Callbacks:
    """Override what you need; every method runs on the training thread."""

    def on_status(self, event: StatusEvent) -> None: ...

    def on_batch(self, event: BatchProgress) -> None: ...

    def on_estep(self, event: EStepEvent) -> None: ...

    def on_epoch_end(self, event: EpochEvent) -> None: ...

    def on_scores(self, event: ScoresEvent) -> None: ...
