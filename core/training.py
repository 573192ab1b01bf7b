"""The training loop: a robust regressor on a project's current labels, with
outlier scores written into the project file as it goes.

Plain Python, no Qt: :func:`train` takes a :class:`TrainConfig`, a
:class:`Callbacks` object and a ``should_stop`` flag (checked every batch, every
evaluation batch and every EM iteration). Events are frozen dataclasses of plain
numbers and NumPy copies, safe to hand to a GUI thread. A stop is a pause: the
run keeps its last epoch-end checkpoint and ``train(..., resume=run_id)``
continues it, deterministically (the random generator's state is saved too).

Each epoch: one pass over the training samples with flip and scale/rotation/
translation jitter (labels moved with the image), then an evaluation pass (eval
mode, no augmentation) over the validation samples for the validation error.
For DeepGUM, one EM round (``em_iterations`` iterations) between epochs sets the
weights of the next epoch. For landmarks its residuals are eval-mode residuals
without augmentation, as DESIGN.md asks; a full pass over the training samples
for them would cost about a quarter of an epoch on a CPU, so after the
first epoch (where the model moves most) all of them are re-evaluated, and
after each later one a rotating share (``1 / refresh_epochs``, a fixed seeded
fold per sample); the E-step uses every sample's latest residual. Epochs no EM
round follows (the last, a warm-up's) re-evaluate none. For ages the
E-step takes the training pass's own residuals (``estep_residuals="auto"``):
the augmentation does not move an age, so they need no mapping, they cost
nothing, and on UTKFace (age-u:0.3, 3 seeds) they ranked better (AUROC 0.893
vs 0.881) with a lower test error (6.8 vs 7.3 years): eval-mode residuals of
images the network has trained on fit a narrower inlier spread.
``estep_residuals="training"`` does the same for landmarks, each residual mapped
back to its label frame by the inverse of its flip and jitter (on FG-NET it
ranked as well but loosened the mixture: swap test error 2.35 % vs 2.28 %).
The first EM round runs on a full eval pass before the first epoch, unless
``warmup_epochs`` asks for plain least squares first. Every ``score_every``
epochs and at the end, every sample is scored from a full eval pass (flip
test-time augmentation) and the scores written.

Training uses samples of the ``train`` split that are not excluded and have a
label; ``val`` gives the validation error; ``test`` is never trained on or fitted.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.images import CachedImages, ImageCache, Letterbox
from core.models import Regressor, build_model
from core.project import Project, ProjectError, Sample, now_iso
from core.robust import METHODS, make_criterion
from core.robust.base import Criterion
from core.robust.deepgum import UNITS, DeepGUMCriterion, unit_of_dim
from core.scoring import image_flagged, score_rows

CHECKPOINT_FORMAT = "gumshoe-checkpoint"
CHECKPOINT_VERSION = 1
PROGRESS_INTERVAL_S = 0.1
HIST_BINS = 20

StopFn = Callable[[], Any]  # truthy: pause; "stop": end the run (not resumable)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for this run (one-line message)."""


class TrainingStopped(Exception):
    """Raised inside the loop when ``should_stop`` says so; :func:`train` catches it."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TrainConfig:
    method: str = "deepgum"  # deepgum | l2 | huber | tukey | barron
    epochs: int = 30
    image_size: int = 64
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    backbone: str = "cnn"
    weights: str | None = None  # local weights file for a torchvision backbone
    unit: str = "auto"  # DeepGUM mixture unit: auto (landmark, or sample for age) | landmark | sample | dimension
    variance: str = "diagonal"  # diagonal | isotropic
    warmup_epochs: int = 0  # plain least-squares epochs before the first EM round
    em_iterations: int = 1  # EM iterations per round (one round per epoch)
    # where the E-step's residuals come from: "evaluation" = eval mode, no augmentation
    # (DESIGN.md), each training sample re-evaluated every ``refresh_epochs`` epochs (a
    # rotating 1/refresh_epochs share per epoch; 1 = all of them every epoch);
    # "training" = the training pass itself (each sample's augmented residual mapped
    # back to its label frame: free); "auto" = training for ages, whose labels the
    # augmentation does not move, evaluation for landmarks
    estep_residuals: str = "auto"
    refresh_epochs: int = 4
    flip: bool = True
    scale_jitter: float = 0.05  # +- share of the size
    rotate_jitter: float = 10.0  # +- degrees
    shift_jitter: float = 0.05  # +- share of the size
    tta: bool = True  # flip test-time augmentation when scoring
    score_every: int = 5  # epochs between score writes (and always at the end)
    amp: bool = True  # bfloat16 autocast on CUDA
    threads: int = 0  # torch CPU threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r} (expected one of {', '.join(METHODS)})")
        if self.unit != "auto" and self.unit not in UNITS:
            raise ValueError(f"unknown mixture unit {self.unit!r} (expected auto or one of {', '.join(UNITS)})")
        if self.estep_residuals not in ("auto", "training", "evaluation"):
            raise ValueError(f"unknown E-step residual source {self.estep_residuals!r} "
                             "(expected auto, training or evaluation)")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"unknown device {self.device!r} (expected auto, cpu, cuda or mps)")
        if self.refresh_epochs < 1:
            raise ValueError("refresh_epochs must be >= 1")
        if self.epochs < 1 or self.batch_size < 2 or self.image_size < 32:
            raise ValueError("epochs must be >= 1, batch size >= 2 and image size >= 32")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings {', '.join(unknown)}")
        if "estep_residuals" not in d:  # a run saved before the setting: it refreshed all
            d = {**d, "estep_residuals": "evaluation", "refresh_epochs": 1}
        return cls(**d)


# --------------------------------------------------------------------------- events


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
    histogram: tuple[int, ...]  # responsibilities of the observed training units, HIST_BINS bins over [0, 1]
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
    estep_seconds: float  # EM, and the eval pass that refreshed its residuals
    histogram: tuple[int, ...] | None  # responsibilities, HIST_BINS bins over [0, 1] (DeepGUM)
    pi_mean: float | None  # mixture summary (DeepGUM): mean inlier fraction over units
    std_median: float | None  # median inlier standard deviation, normalised units ([-1, 1] square)


@dataclass(frozen=True)
class ScoresEvent:
    run_id: int
    epoch: int
    n_samples: int
    n_flagged: int  # samples core.scoring.image_flagged calls wrong
    top: tuple[tuple[int, float], ...]  # (sample id, score) of the 20 highest


class Callbacks:
    """Override what you need; every method runs on the training thread."""

    def on_status(self, event: StatusEvent) -> None: ...

    def on_batch(self, event: BatchProgress) -> None: ...

    def on_estep(self, event: EStepEvent) -> None: ...

    def on_epoch_end(self, event: EpochEvent) -> None: ...

    def on_scores(self, event: ScoresEvent) -> None: ...


# --------------------------------------------------------------------------- data


@dataclass
class TrainData:
    """Everything the loop needs, in memory: all samples of the project."""

    ids: np.ndarray  # (N,) sample ids
    samples: list[Sample]
    images: CachedImages  # (N, S, S, 3) uint8 rows, read from the memory-mapped cache per batch
    targets: np.ndarray  # (N, D) float32 normalised, 0 where missing
    mask: np.ndarray  # (N, D) bool
    letterboxes: list[Letterbox]
    train: np.ndarray  # indices into the arrays above
    val: np.ndarray
    task: str
    flip_perm: np.ndarray | None  # keypoint permutation for a mirrored image, or None
    age_range: tuple[float, float] | None
    errors: dict[int, str] = field(default_factory=dict)  # unreadable images (not used)

    @property
    def n_dims(self) -> int:
        return self.targets.shape[1]


def normalise_points(cache_points: np.ndarray, size: int) -> np.ndarray:
    """Cache pixel-centre coordinates -> [-1, 1] (grid_sample's align_corners=False)."""
    return (cache_points + 0.5) / size * 2.0 - 1.0


def denormalise_points(u: np.ndarray, size: int) -> np.ndarray:
    return (u + 1.0) / 2.0 * size - 0.5


def load_data(project: Project, size: int, on_progress: Callable[[int, int], None] | None = None,
              should_stop: StopFn | None = None) -> TrainData:
    schema = project.schema
    if schema is None:
        raise ProjectError(f"{project.path}: the project has no labels to train on")
    cache = ImageCache(project.cache_dir, size)
    all_samples = project.samples()
    errors = cache.ensure(all_samples, on_progress, should_stop)
    if should_stop is not None and should_stop():
        raise TrainingStopped
    samples = [s for s in all_samples if s.id not in errors]
    labels = project.current_labels()
    lbs = [cache.transform(s) for s in samples]
    n = len(samples)
    if schema.task == "landmarks":
        k = schema.n_keypoints
        targets = np.zeros((n, 2 * k), np.float32)
        mask = np.zeros((n, 2 * k), bool)
        for i, (s, lb) in enumerate(zip(samples, lbs, strict=True)):
            lab = labels.get(s.id)
            if lab is None or lab.points is None:
                continue
            pts = lab.points
            ok = np.isfinite(pts).all(axis=1)
            if lab.visibility is not None:
                ok &= lab.visibility > 0
            u = normalise_points(lb.to_cache(np.where(ok[:, None], pts, 0.0)), size)
            targets[i] = np.where(ok[:, None], u, 0.0).reshape(-1)
            mask[i] = np.repeat(ok, 2)
        age_range = None
        perm = schema.flip_permutation() if schema.flip_pairs else None
    else:
        ages = np.array([np.nan if (lab := labels.get(s.id)) is None or lab.age is None
                         else lab.age for s in samples])
        finite = np.isfinite(ages)
        if not finite.any():
            raise ProjectError(f"{project.path}: no sample has an age")
        lo, hi = float(ages[finite].min()), float(ages[finite].max())
        hi = hi if hi > lo else lo + 1.0
        age_range = (lo, hi)
        targets = np.where(finite, (ages - lo) / (hi - lo) * 2.0 - 1.0, 0.0)[:, None].astype(np.float32)
        mask = finite[:, None].copy()
        perm = None
    split = np.array([s.split for s in samples])
    usable = np.array([s.review_status != "excluded" for s in samples]) & mask.any(axis=1)
    train_idx = np.flatnonzero(usable & (split == "train"))
    val_idx = np.flatnonzero(usable & (split == "val"))
    if len(train_idx) < 2:
        raise ProjectError(f"{project.path}: fewer than 2 labelled training samples")
    images = cache.reader([s.id for s in samples])
    return TrainData(np.array([s.id for s in samples], dtype=np.int64), samples, images, targets,
                     mask, lbs, train_idx, val_idx, schema.task, perm, age_range, errors)


# --------------------------------------------------------------------------- model io


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but torch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None
                              and torch.backends.mps.is_available()):
        raise ValueError("device mps asked for, but it is not available")
    return torch.device(name)


def to_input(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [-0.5, 0.5], channels-last."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
    return x.contiguous(memory_format=torch.channels_last)


def flip_outputs(pred: torch.Tensor, perm: np.ndarray | None, task: str) -> torch.Tensor:
    """Outputs for a mirrored image, mapped back to the unmirrored frame."""
    if task != "landmarks":
        return pred
    p = pred.view(pred.shape[0], -1, 2)
    if perm is not None:
        p = p[:, torch.as_tensor(perm, device=pred.device)]
    return torch.stack([-p[..., 0], p[..., 1]], dim=-1).reshape(pred.shape)


@torch.inference_mode()
def predict(model: Regressor, data: TrainData, index: np.ndarray, device: torch.device,
            tta: bool, should_stop: StopFn | None, amp: bool,
            batch: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalised predictions (len(index), D) float64, eval mode; with ``tta`` the mean
    over the image and its mirror, and half their difference as a spread. Batches of
    64: on a CPU, 4x larger batches ran at half the speed (cache misses)."""
    model.eval()
    outs, spreads = [], []
    can_flip = tta and (data.task != "landmarks" or data.flip_perm is not None)
    for start in range(0, len(index), batch):
        if should_stop is not None and should_stop():
            raise TrainingStopped
        x = to_input(torch.from_numpy(data.images[index[start:start + batch]]), device)
        with _autocast(device, amp):
            p = model(x).float()
            if can_flip:
                q = flip_outputs(model(torch.flip(x, dims=[3])).float(), data.flip_perm, data.task)
                spreads.append(((p - q).abs() / 2).cpu().numpy())
                p = (p + q) / 2
        outs.append(p.cpu().numpy())
    n_dims = data.n_dims
    pred = np.concatenate(outs).astype(np.float64) if outs else np.zeros((0, n_dims))
    spread = np.concatenate(spreads).astype(np.float64) if spreads else None
    return pred, spread


def _autocast(device: torch.device, amp: bool) -> Any:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class Augmentation:
    """What :func:`augment` did to a batch: the label map is y_aug = A^-1 (y - t)
    after the flip's keypoint permutation, so a residual in the augmented frame
    maps back to the label frame as A r (then the permutation undone)."""

    a: torch.Tensor  # (B, 2, 2)
    flip: torch.Tensor  # (B,) bool


def augment(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, cfg: TrainConfig,
            data: TrainData, gen: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Augmentation]:
    """Random flip and similarity jitter of a batch; landmark targets (and their
    weights) move with the image. x (B, 3, S, S) float, y and w (B, D) normalised."""
    b = x.shape[0]
    dev = x.device
    landmarks = data.task == "landmarks"
    can_flip = cfg.flip and (not landmarks or data.flip_perm is not None)
    flip = (torch.rand(b, generator=gen) < 0.5) if can_flip else torch.zeros(b, dtype=torch.bool)
    scale = 1.0 + (torch.rand(b, generator=gen) * 2 - 1) * cfg.scale_jitter
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(cfg.rotate_jitter)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 * cfg.shift_jitter)
    if landmarks and flip.any():
        perm = torch.as_tensor(data.flip_perm)
        fi = flip.to(dev)
        yv, wv = y.view(b, -1, 2), w.view(b, -1, 2)
        yv = torch.where(fi[:, None, None], yv[:, perm], yv)
        wv = torch.where(fi[:, None, None], wv[:, perm], wv)
        y, w = yv.reshape(b, -1), wv.reshape(b, -1)
    # output -> input sampling map: p_in = A p_out + t, A = s R(angle) diag(fx, 1)
    fx = torch.where(flip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a = torch.stack([torch.stack([scale * cos * fx, -scale * sin], -1),
                     torch.stack([scale * sin * fx, scale * cos], -1)], 1)  # (B, 2, 2)
    theta = torch.cat([a, shift[:, :, None]], dim=2).to(dev, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if landmarks:
        a_inv = torch.linalg.inv(a).to(dev, y.dtype)
        p = y.view(b, -1, 2) - shift.to(dev, y.dtype)[:, None, :]
        y = torch.einsum("bij,bkj->bki", a_inv, p).reshape(b, -1)
    return x.contiguous(memory_format=torch.channels_last), y, w, Augmentation(a, flip)


def unaugment_residuals(res: torch.Tensor, aug: Augmentation, data: TrainData) -> torch.Tensor:
    """Residuals y_aug - f(x_aug) of an augmented batch (B, D), mapped back to the
    label frame of the unaugmented sample (exact for a network that follows the
    image; ages are unchanged by the jitter)."""
    if data.task != "landmarks":
        return res
    b = res.shape[0]
    r = torch.einsum("bij,bkj->bki", aug.a.to(res.device, res.dtype), res.view(b, -1, 2))
    if data.flip_perm is not None and bool(aug.flip.any()):
        perm = torch.as_tensor(data.flip_perm, device=res.device)
        r = torch.where(aug.flip.to(res.device)[:, None, None], r[:, perm], r)
    return r.reshape(b, -1)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_path(project: Project, run_id: int) -> Path:
    return project.cache_dir / "checkpoints" / f"run-{run_id}.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, run_id: int, method: str) -> dict[str, Any]:
    """The checkpoint's contents, refused with a one-line :class:`CheckpointError` when
    it is unreadable, not Gumshoe's, or another run's."""
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable Gumshoe checkpoint ({reason})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a Gumshoe checkpoint")
    if ck.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ck.get('version')} is not supported "
                              f"(this Gumshoe reads version {CHECKPOINT_VERSION})")
    if ck.get("run_id") != run_id or ck.get("method") != method:
        raise CheckpointError(f"{path}: checkpoint of run {ck.get('run_id')} ({ck.get('method')}), "
                              f"not of run {run_id} ({method})")
    return ck


# --------------------------------------------------------------------------- the loop


def lr_at(step: int, total: int, base: float) -> float:
    """Linear warm-up over the first 3% of steps, then cosine decay to 1% of base."""
    warm = max(1, int(0.03 * total))
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def val_error(pred: np.ndarray, data: TrainData, index: np.ndarray) -> float | None:
    """Landmarks: mean point error as a share of the input square (the image or box
    size); age: mean absolute error in years."""
    if len(index) == 0:
        return None
    err = pred - data.targets[index]
    m = data.mask[index]
    if data.task == "landmarks":
        e = np.sqrt((err.reshape(len(index), -1, 2) ** 2).sum(-1)) / 2.0
        mk = m.reshape(len(index), -1, 2)[..., 0]
        return float(e[mk].mean()) if mk.any() else None
    assert data.age_range is not None
    lo, hi = data.age_range
    return float((np.abs(err[:, 0]) * (hi - lo) / 2.0)[m[:, 0]].mean())


class _Trainer:
    def __init__(self, project: Project, run_id: int, cfg: TrainConfig, data: TrainData,
                 callbacks: Callbacks, should_stop: StopFn) -> None:
        self.project, self.run_id, self.cfg, self.data = project, run_id, cfg, data
        self.cb, self.should_stop = callbacks, should_stop
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.model = build_model(data.n_dims, cfg.backbone, cfg.image_size, cfg.weights)
        self.model.to(self.device).to(memory_format=torch.channels_last)
        self.criterion = self._make_criterion()
        for p in self.criterion.parameters():
            p.data = p.data.to(self.device)
        self.optimizer = torch.optim.AdamW(
            [*self.model.parameters(), *self.criterion.parameters()], lr=cfg.lr,
            weight_decay=cfg.weight_decay)
        # the latest residuals of every training sample, for the E-step (DeepGUM)
        self.train_res: np.ndarray | None = None
        self.pending_estep_s = 0.0  # the pass before the first epoch, counted with it
        source = cfg.estep_residuals
        if source == "auto":
            source = "training" if data.task == "age" else "evaluation"
        self.from_training_pass = source == "training"
        if cfg.method == "deepgum":
            self.train_res = np.zeros((len(data.train), data.n_dims), np.float32)
            # which epochs re-evaluate a training sample: a fixed seeded fold each
            self.refresh_fold = np.random.default_rng(cfg.seed).permutation(
                len(data.train)) % cfg.refresh_epochs
        self.epoch = 0
        self.ck_path = checkpoint_path(project, run_id)

    def _make_criterion(self) -> Criterion:
        if self.cfg.method != "deepgum":
            return make_criterion(self.cfg.method, self.data.n_dims)
        unit = self.cfg.unit
        if unit == "auto":
            unit = "landmark" if self.data.task == "landmarks" else "sample"
        if self.data.task == "age":
            unit = "sample"  # one dimension: every unit is the sample
        return make_criterion("deepgum", self.data.n_dims,
                              groups=unit_of_dim(self.data.n_dims, unit),
                              label_range=2.0, variance=self.cfg.variance)

    # ----------------------------------------------------------- checkpoint

    def save(self) -> None:
        save_checkpoint(self.ck_path, {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "run_id": self.run_id, "method": self.cfg.method, "epoch": self.epoch,
            "train_ids": torch.from_numpy(self.data.ids[self.data.train].copy()),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "criterion": self.criterion.state_dict(), "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            **({} if self.train_res is None else {"train_res": torch.from_numpy(self.train_res)}),
        })
        self.project.update_run(self.run_id, checkpoint=str(self.ck_path))

    def restore(self) -> None:
        ck = load_checkpoint(self.ck_path, self.run_id, self.cfg.method)
        ids = self.data.ids[self.data.train]
        saved = ck["train_ids"].numpy()
        if not np.array_equal(saved, ids):
            raise CheckpointError(
                f"{self.ck_path}: the training samples changed since this checkpoint "
                f"({len(saved)} then, {len(ids)} now; exclusions or splits edited): start a new run")
        try:
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            self.criterion.load_state_dict(ck["criterion"])
            self.gen.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            if self.train_res is not None and "train_res" in ck:
                self.train_res = ck["train_res"].numpy().copy()
            elif self.train_res is not None:  # a checkpoint from before residuals were kept
                self.train_res[:] = self.evaluate()[0]
        except (KeyError, RuntimeError, ValueError) as exc:
            msg = str(exc).strip().splitlines()[0][:120]
            raise CheckpointError(f"{self.ck_path}: does not fit this model ({msg})") from None
        self.epoch = int(ck["epoch"])

    # ----------------------------------------------------------- steps

    def check_stop(self) -> None:
        if self.should_stop():
            raise TrainingStopped

    def train_epoch(self) -> tuple[float, float]:
        """One pass over the training samples: (mean loss, images per second)."""
        cfg, data, dev = self.cfg, self.data, self.device
        self.model.train()
        order = torch.randperm(len(data.train), generator=self.gen).numpy()
        bs = cfg.batch_size
        n_batches = len(order) // bs if len(order) >= bs else 1  # drop the ragged last batch
        total_steps = cfg.epochs * n_batches
        t0 = last = time.perf_counter()
        losses: list[float] = []
        seen = 0
        for b in range(n_batches):
            self.check_stop()
            pos = order[b * bs:(b + 1) * bs]
            idx = data.train[pos]
            w = self.criterion.weights(pos) * data.mask[idx]
            x = to_input(torch.from_numpy(data.images[idx]), dev)
            y = torch.from_numpy(data.targets[idx]).to(dev)
            wt = torch.from_numpy(w.astype(np.float32)).to(dev)
            x, y, wt, aug = augment(x, y, wt, cfg, data, self.gen)
            for g in self.optimizer.param_groups:
                g["lr"] = lr_at(self.epoch * n_batches + b, total_steps, cfg.lr)
            with _autocast(dev, cfg.amp):
                pred = self.model(x).float()
            loss = self.criterion.loss(pred, y, wt)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()))
            if self.train_res is not None and self.from_training_pass:
                r = unaugment_residuals((y - pred).detach(), aug, data)
                self.train_res[pos] = r.float().cpu().numpy()
            seen += len(idx)
            now = time.perf_counter()
            if now - last >= PROGRESS_INTERVAL_S or b == n_batches - 1:
                last = now
                self.cb.on_batch(BatchProgress(self.run_id, self.epoch, cfg.epochs, b + 1,
                                               n_batches, losses[-1], seen / max(now - t0, 1e-9)))
        return float(np.mean(losses)), seen / max(time.perf_counter() - t0, 1e-9)

    def em_round(self, res: np.ndarray) -> float:
        """One EM round on the training residuals; returns its seconds."""
        t0 = time.perf_counter()
        em = self.criterion.fit(res, self.data.mask[self.data.train], self.cfg.em_iterations,
                                self.should_stop)
        seconds = time.perf_counter() - t0
        if em is None:
            return seconds
        if em.stopped:
            raise TrainingStopped
        assert isinstance(self.criterion, DeepGUMCriterion)
        mix = self.criterion.mixture
        hist = self._histogram()
        self.cb.on_estep(EStepEvent(self.run_id, self.epoch, em.iterations, em.inlier_fraction,
                                    em.pi.copy(), em.variance.copy(), em.width.copy(), hist, seconds))
        self.project.update_run(self.run_id, state={"epoch": self.epoch, "mixture": mix.summary(),
                                                    "inlier_fraction": em.inlier_fraction})
        return seconds

    def _inlier_fraction(self) -> float | None:
        if not isinstance(self.criterion, DeepGUMCriterion) or self.criterion.mixture.r is None:
            return None
        return self.criterion.mixture.inlier_fraction(self.data.mask[self.data.train])

    def _histogram(self) -> tuple[int, ...] | None:
        if not isinstance(self.criterion, DeepGUMCriterion) or self.criterion.mixture.r is None:
            return None
        mix = self.criterion.mixture
        observed = (self.data.mask[self.data.train].astype(np.float64) @ mix.assign) > 0
        counts, _ = np.histogram(mix.r[observed], bins=HIST_BINS, range=(0.0, 1.0))
        return tuple(int(c) for c in counts)

    def evaluate(self, positions: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float | None, float, float]:
        """Eval-mode residuals of the training samples at ``positions`` (all when
        None), the validation error, and the seconds of each of the two passes."""
        t0 = time.perf_counter()
        data = self.data
        pos = np.arange(len(data.train)) if positions is None else positions
        pred, _ = predict(self.model, data, data.train[pos], self.device, False,
                          self.should_stop, self.cfg.amp)
        res = data.targets[data.train[pos]] - pred
        t1 = time.perf_counter()
        pred, _ = predict(self.model, data, data.val, self.device, False, self.should_stop,
                          self.cfg.amp)
        return res, val_error(pred, data, data.val), t1 - t0, time.perf_counter() - t1

    def write_scores(self) -> None:
        data = self.data
        every = np.arange(len(data.ids))
        pred, spread = predict(self.model, data, every, self.device, self.cfg.tta,
                               self.should_stop, self.cfg.amp)
        res = data.targets - pred
        scorer = self.criterion
        if isinstance(scorer, DeepGUMCriterion):
            # refit a copy on the residuals the scores are made of (test-time augmented)
            scorer = copy.deepcopy(scorer)
            scorer.fit(res[data.train], data.mask[data.train], 3)
        rows = score_rows(data, pred, spread, res, scorer)
        self.project.write_scores(self.run_id, rows)
        top = sorted(((r.sample_id, float(r.score)) for r in rows), key=lambda t: -t[1])[:20]
        log_odds = isinstance(self.criterion, DeepGUMCriterion)
        n_flagged = sum(1 for r in rows
                        if image_flagged(r.landmark_scores or [r.score], log_odds))
        self.cb.on_scores(ScoresEvent(self.run_id, self.epoch, len(rows), n_flagged, tuple(top)))

    # ----------------------------------------------------------- run

    def run(self, resumed: bool) -> None:
        cfg = self.cfg
        # a run paused before its first checkpoint (while caching images) starts afresh
        if resumed and (self.ck_path.exists() or self.project.epochs(self.run_id)):
            self.restore()
        else:
            train_mean = (self.data.targets[self.data.train] * self.data.mask[self.data.train]).sum(0) \
                / np.maximum(self.data.mask[self.data.train].sum(0), 1)
            self.model.init_output(torch.from_numpy(train_mean.astype(np.float32)))
            # the first EM round (or, after a warm-up, the training pass) starts from
            # a full eval pass; a warm-up on eval residuals refreshes them all itself
            if self.train_res is not None and (cfg.warmup_epochs == 0 or self.from_training_pass):
                t_pass = time.perf_counter()
                self.train_res[:] = self.evaluate()[0]
                if cfg.warmup_epochs == 0:
                    self.em_round(self.train_res.astype(np.float64))
                self.pending_estep_s = time.perf_counter() - t_pass
            self.save()
        self.project.update_run(self.run_id, status="running", message="")
        self.cb.on_status(StatusEvent(self.run_id, "running",
                                      f"epoch {self.epoch + 1} of {cfg.epochs}"))
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            loss, ips = self.train_epoch()
            em_next = self.train_res is not None and cfg.warmup_epochs <= self.epoch + 1 < cfg.epochs
            refresh = np.zeros(0, np.int64)  # baselines: the validation samples only
            if em_next and not self.from_training_pass:
                # every sample after the first epoch (the model moved most) and before the
                # first EM round after a warm-up; a rotating fold in the other epochs
                full = self.epoch == 0 or self.epoch + 1 == cfg.warmup_epochs
                refresh = (np.arange(len(self.data.train)) if full else
                           np.flatnonzero(self.refresh_fold == self.epoch % cfg.refresh_epochs))
            fresh, verr, refresh_s, eval_s = self.evaluate(refresh)
            em_s = 0.0
            if self.train_res is not None:
                self.train_res[refresh] = fresh
                if em_next:
                    em_s = self.em_round(self.train_res.astype(np.float64))
                # the E-step's cost includes the passes that made its residuals; the one
                # before the first epoch counts with (and in the time of) the first
                em_s += refresh_s + self.pending_estep_s
            seconds = time.perf_counter() - t0 + self.pending_estep_s
            self.pending_estep_s = 0.0
            inlier = self._inlier_fraction()
            hist = self._histogram()
            metrics: dict[str, Any] = {"eval_seconds": eval_s, "estep_seconds": em_s,
                                       "train_images": int(len(self.data.train))}
            if isinstance(self.criterion, DeepGUMCriterion) and self.criterion.mixture.fitted:
                metrics["mixture"] = self.criterion.mixture.summary()
                metrics["histogram"] = list(hist or ())
            if cfg.method == "barron":
                from core.robust.barron import BarronCriterion

                assert isinstance(self.criterion, BarronCriterion)
                metrics["alpha_median"] = float(self.criterion.alpha().detach().median())
                metrics["scale_median"] = float(self.criterion.scale().detach().median())
            self.project.add_epoch(self.run_id, self.epoch, train_loss=loss, val_error=verr,
                                   inlier_fraction=inlier, images_per_s=ips, seconds=seconds,
                                   metrics=metrics)
            summ = metrics.get("mixture", {})
            event = EpochEvent(self.run_id, self.epoch, cfg.epochs, loss, verr, inlier, ips,
                               seconds, eval_s, em_s, hist, summ.get("pi_mean"),
                               summ.get("std_median"))
            self.epoch += 1
            last = self.epoch == cfg.epochs
            if last or (cfg.score_every > 0 and self.epoch % cfg.score_every == 0):
                self.write_scores()
            self.save()
            self.cb.on_epoch_end(event)


def train(project_path: str | os.PathLike[str], config: TrainConfig | None = None,
          callbacks: Callbacks | None = None, should_stop: StopFn | None = None, *,
          resume: int | None = None, owner: str = "cli") -> int:
    """Train on the project's current labels and write the run, its epochs and its
    scores into the project file; returns the run id. ``resume`` continues a paused
    run from its checkpoint (its stored config is used; ``config`` is ignored).
    A stop (``should_stop()`` true) leaves the run 'paused' and resumable; a
    ``should_stop()`` that returns ``"stop"`` ends it for good ('stopped').
    The project's training lease is held throughout (``owner``: cli, gui or bench):
    a second trainer is refused with :class:`core.project.LeaseHeldError`."""
    cb = callbacks or Callbacks()
    user_stop = should_stop or (lambda: False)
    project = Project.open(project_path)
    try:
        with project.acquire_lease(resume, owner) as lease:
            if resume is not None:
                run = project.run(resume)
                if run.status in ("finished", "stopped"):
                    raise ProjectError(f"{project.path}: run {resume} is {run.status}; "
                                       "nothing to resume")
                cfg = TrainConfig.from_dict(run.params["config"])
                run_id = resume
            else:
                cfg = config or TrainConfig()
                run_id = project.create_run(cfg.method, {"config": cfg.to_dict()},
                                            device=str(pick_device(cfg.device)))
                lease.set_run(run_id)

            def stop() -> Any:
                lease.heartbeat()  # stop checks run every batch: the trainer's pulse
                return user_stop()

            return _train_run(project, run_id, cfg, cb, stop, resume is not None)
    finally:
        project.close()


def _train_run(project: Project, run_id: int, cfg: TrainConfig, cb: Callbacks, stop: StopFn,
               resumed: bool) -> int:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    project.update_run(run_id, status="running", pid=os.getpid(), message="preparing")
    cb.on_status(StatusEvent(run_id, "preparing", "loading images"))
    trainer: _Trainer | None = None
    try:
        data = load_data(project, cfg.image_size,
                         lambda done, total: cb.on_status(StatusEvent(
                             run_id, "preparing", f"caching images {done}/{total}")), stop)
        trainer = _Trainer(project, run_id, cfg, data, cb, stop)
        trainer.run(resumed)
    except TrainingStopped:
        epoch = 0 if trainer is None else trainer.epoch
        if stop() == "stop":
            status, msg = "stopped", f"stopped after epoch {epoch} of {cfg.epochs}"
        else:
            status = "paused"
            msg = f"paused after epoch {epoch} of {cfg.epochs}; resume continues from there"
        project.update_run(run_id, status=status, message=msg)
        cb.on_status(StatusEvent(run_id, status, msg))
        return run_id
    except BaseException as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        project.update_run(run_id, status="failed", message=msg)
        cb.on_status(StatusEvent(run_id, "failed", msg))
        raise
    project.update_run(run_id, status="finished", finished_at=now_iso(), message="")
    cb.on_status(StatusEvent(run_id, "finished", f"{cfg.epochs} epochs"))
    return run_id
