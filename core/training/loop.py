"""The training loop: a robust regressor on a project's current labels, its
progress told to callbacks and persisted through one recorder.

Plain Python, no Qt: :func:`train` takes a :class:`TrainConfig`, a
:class:`Callbacks` object and a ``should_stop`` flag (checked every batch, every
evaluation batch and every EM iteration). A stop is a pause: the run keeps its
last epoch-end checkpoint and ``train(..., resume=run_id)`` continues it,
deterministically (the random generator's state is saved too).

Each epoch: one pass over the training samples with flip and scale/rotation/
translation jitter (labels moved with the image), then the method's
between-epoch hook (DeepGUM's E-step and the refresh of its residuals), then an
evaluation pass (eval mode, no augmentation) over the validation samples for the
validation error. Every ``score_every`` epochs and at the end, every sample is
scored from a full eval pass (flip test-time augmentation) and the scores
written. The loop knows no method by name (:mod:`core.robust`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.models import build_model
from core.project import Project, ProjectError
from core.robust import make_method
from core.robust.base import EStepInfo
from core.scoring import sample_flagged, score_rows
from core.training.augmentation import augment, unaugment_residuals
from core.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    check_states,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from core.training.config import TrainConfig
from core.training.data import StopFn, TrainData, TrainingStopped, load_data
from core.training.events import (
    BatchProgress,
    Callbacks,
    EpochEvent,
    EStepEvent,
    ScoresEvent,
    StatusEvent,
)
from core.training.predict import Predictions, forward, pick_device, predict, to_input
from core.training.recorder import ProjectRecorder, Recorder

PROGRESS_INTERVAL_S = 0.1


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


@dataclass
class _Fit:
    """The :class:`core.robust.base.FitContext` the loop hands a method."""

    trainer: Trainer
    epoch: int
    epochs: int
    warmup_epochs: int
    mask: np.ndarray
    targets: np.ndarray
    inliers: np.ndarray

    def evaluate(self, positions: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        return self.trainer.train_residuals(positions)

    def should_stop(self) -> bool:
        return bool(self.trainer.should_stop())


class Trainer:
    """One run's model, method, optimizer and loop (see the module docstring)."""

    def __init__(self, run_id: int, cfg: TrainConfig, data: TrainData, callbacks: Callbacks,
                 should_stop: StopFn, recorder: Recorder, ck_path: Path,
                 writer: bool = True, offset: int = 0, total: int | None = None,
                 scores: bool = True) -> None:
        self.run_id, self.cfg, self.data = run_id, cfg, data
        self.cb, self.should_stop, self.recorder = callbacks, should_stop, recorder
        self.ck_path, self.writer = ck_path, writer
        # a run of several models (cross-fitting) numbers its epochs on from ``offset``
        # of ``total``; only a model that ``scores`` writes the run's scores
        self.offset, self.total, self.scores = offset, total or cfg.epochs, scores
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.method = make_method(cfg.method, data.problem, cfg)
        n_scales = data.n_points if self.method.predicts_scale else 0
        self.model = build_model(data.n_dims, cfg.backbone, cfg.image_size, cfg.weights,
                                 n_scales=n_scales, head=cfg.head_for(data.task))
        self.model.to(self.device).to(memory_format=torch.channels_last)
        self.method.to(self.device)
        self.optimizer = torch.optim.AdamW(
            [*self.model.parameters(), *self.method.parameters()], lr=cfg.lr,
            weight_decay=cfg.weight_decay)
        self.epoch = 0
        self.pending_estep_s = 0.0  # the method's fit before the first epoch, counted with it
        # cross-fitting: the predictions the scores judge (out-of-fold), from those shown
        self.judged: Callable[[Predictions], Predictions] | None = None

    def fit_context(self, done: int) -> _Fit:
        d = self.data
        return _Fit(self, done, self.cfg.epochs, self.cfg.warmup_epochs, d.mask[d.train],
                    d.targets[d.train], d.reviewed[d.train])

    # ----------------------------------------------------------- checkpoint

    def save(self) -> None:
        if not self.writer:
            return
        save_checkpoint(self.ck_path, {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "run_id": self.run_id, "method": self.cfg.method, "epoch": self.epoch,
            "train_ids": torch.from_numpy(self.data.ids[self.data.train].copy()),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "method_state": self.method.state_dict(), "generator": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        })
        self.recorder.checkpoint(str(self.ck_path))

    def restore(self) -> None:
        ck = load_checkpoint(self.ck_path, self.run_id, self.cfg.method, self.cfg.epochs)
        ids = self.data.ids[self.data.train]
        saved = ck["train_ids"].numpy()
        if not np.array_equal(saved, ids):
            raise CheckpointError(
                f"{self.ck_path}: the training samples changed since this checkpoint "
                f"({len(saved)} then, {len(ids)} now; exclusions or splits edited): start a new run")
        check_states(self.ck_path, ck, self.model, self.optimizer)
        try:
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            self.method.load_state_dict(ck["method_state"])
            self.gen.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            msg = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
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
        loss_sum = torch.zeros((), device=dev)  # summed on the device: no host sync per batch
        seen = 0
        want_res = self.method.wants_training_residuals()
        for b in range(n_batches):
            self.check_stop()
            pos = order[b * bs:(b + 1) * bs]
            idx = data.train[pos]
            targets, mask = self.method.batch_targets(pos, data.targets[idx], data.mask[idx])
            w = self.method.weights(pos) * mask
            x = to_input(torch.from_numpy(data.images[idx]), dev)
            y = torch.from_numpy(targets).to(dev)
            wt = torch.from_numpy(w.astype(np.float32)).to(dev)
            x, y, wt, aug = augment(x, y, wt, cfg, data, self.gen)
            for g in self.optimizer.param_groups:
                g["lr"] = lr_at(self.epoch * n_batches + b, total_steps, cfg.lr)
            out = forward(self.model, x, data.n_dims, dev, cfg.amp)
            loss = self.method.loss(out, y, wt)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach()
            if want_res:
                r = unaugment_residuals((y - out.mean).detach(), aug, data)
                ls = out.log_scale
                if ls is not None and data.flip_perm is not None and bool(aug.flip.any()):
                    perm = torch.as_tensor(data.flip_perm, device=ls.device)
                    ls = torch.where(aug.flip.to(ls.device)[:, None], ls[:, perm], ls)
                self.method.observe_batch(pos, r, ls)
            seen += len(idx)
            now = time.perf_counter()
            if now - last >= PROGRESS_INTERVAL_S or b == n_batches - 1:
                last = now
                self.cb.on_batch(BatchProgress(self.run_id, self.offset + self.epoch, self.total, b + 1,
                                               n_batches, float(loss.detach()),
                                               seen / max(now - t0, 1e-9)))
        mean_loss = float(loss_sum) / max(n_batches, 1)
        return mean_loss, seen / max(time.perf_counter() - t0, 1e-9)

    def train_residuals(self, positions: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """Eval-mode residuals and log scales of the training samples at ``positions``."""
        data = self.data
        pos = np.arange(len(data.train)) if positions is None else positions
        p = predict(self.model, data, data.train[pos], self.device, False, self.should_stop,
                    self.cfg.amp)
        return data.targets[data.train[pos]] - p.mean, p.log_scale

    def validate(self) -> tuple[float | None, float]:
        t0 = time.perf_counter()
        data = self.data
        p = predict(self.model, data, data.val, self.device, False, self.should_stop,
                    self.cfg.amp)
        return val_error(p.mean, data, data.val), time.perf_counter() - t0

    def announce_estep(self, info: EStepInfo | None, epoch: int, seconds: float) -> None:
        if info is None:
            return
        if info.stopped:
            raise TrainingStopped
        epoch += self.offset
        self.cb.on_estep(EStepEvent(self.run_id, epoch, info.iterations, info.inlier_fraction,
                                    info.pi.copy(), info.variance.copy(), info.width.copy(),
                                    info.histogram, seconds))
        self.recorder.state({"epoch": epoch, "inlier_fraction": info.inlier_fraction,
                             **{k: v for k, v in self.method.metrics().items()
                                if k != "histogram"}})

    def predict_all(self, index: np.ndarray | None = None) -> Predictions:
        """Predictions (flip test-time augmented where the config says) for the samples
        at ``index`` of the data (all when None)."""
        index = np.arange(len(self.data.ids)) if index is None else index
        return predict(self.model, self.data, index, self.device, self.cfg.tta,
                       self.should_stop, self.cfg.amp)

    def write_scores(self) -> None:
        if not self.scores:
            return
        data = self.data
        shown = self.predict_all()
        judged = self.judged(shown) if self.judged is not None else shown
        rows = score_rows(data, judged, self.method, shown)
        self.recorder.scores(rows)
        top = sorted(((r.sample_id, float(r.score)) for r in rows), key=lambda t: -t[1])[:20]
        n_flagged = sum(1 for r in rows if sample_flagged(r.score))
        self.cb.on_scores(ScoresEvent(self.run_id, self.offset + self.epoch, len(rows), n_flagged,
                                      tuple(top)))

    # ----------------------------------------------------------- run

    def run(self, resumed: bool, has_epochs: bool) -> None:
        cfg = self.cfg
        # a run paused before its first checkpoint (while caching images) starts afresh
        if resumed and (self.ck_path.exists() or has_epochs):
            self.restore()
        else:
            d = self.data
            train_mean = (d.targets[d.train] * d.mask[d.train]).sum(0) \
                / np.maximum(d.mask[d.train].sum(0), 1)
            self.model.init_output(torch.from_numpy(train_mean.astype(np.float32)))
            t0 = time.perf_counter()
            info = self.method.start(self.fit_context(0))
            self.pending_estep_s = time.perf_counter() - t0
            self.announce_estep(info, 0, self.pending_estep_s)
            self.save()
        self.recorder.status("running")
        self.cb.on_status(StatusEvent(self.run_id, "running",
                                      f"epoch {self.offset + self.epoch + 1} of {self.total}"))
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            loss, ips = self.train_epoch()
            t1 = time.perf_counter()
            info = self.method.after_epoch(self.fit_context(self.epoch + 1))
            fit_s = time.perf_counter() - t1
            self.announce_estep(info, self.epoch + 1, fit_s)
            verr, eval_s = self.validate()
            # the method's fit before the first epoch counts with (and in the time of) it
            estep_s = fit_s + self.pending_estep_s
            seconds = time.perf_counter() - t0 + self.pending_estep_s
            self.pending_estep_s = 0.0
            inlier = self.method.inlier_fraction()
            metrics: dict[str, Any] = {"eval_seconds": eval_s, "estep_seconds": estep_s,
                                       "train_images": int(len(self.data.train)),
                                       **self.method.metrics()}
            self.recorder.epoch(self.offset + self.epoch, train_loss=loss, val_error=verr,
                                inlier_fraction=inlier, images_per_s=ips, seconds=seconds,
                                metrics=metrics)
            summ = metrics.get("mixture", {})
            hist = self.method.histogram()
            event = EpochEvent(self.run_id, self.offset + self.epoch, self.total, loss, verr, inlier, ips,
                               seconds, eval_s, estep_s, hist, summ.get("pi_mean"),
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


def left_out_message(project: Project, errors: dict[int, str]) -> str:
    """One line on the samples a run leaves out because their image cannot be used."""
    from core.image_cache import image_problems

    kinds = Counter(p.kind for sid, p in image_problems(project.cache_dir).items()
                    if sid in errors)
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "unreadable"
    return (f"left out {len(errors)} images that cannot be used ({detail}); "
            "`gumshoe info` lists them")


def _train_run(project: Project, run_id: int, cfg: TrainConfig, cb: Callbacks, stop: StopFn,
               resumed: bool) -> int:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    recorder = ProjectRecorder(project, run_id)
    recorder.status("running", "preparing", pid=os.getpid())
    cb.on_status(StatusEvent(run_id, "preparing", "loading images"))
    trainers: list[Trainer] = []
    total = cfg.epochs * (cfg.folds + 1 if cfg.folds > 1 else 1)
    try:
        data = load_data(project, cfg.image_size,
                         lambda done, total: cb.on_status(StatusEvent(
                             run_id, "preparing", f"caching images {done}/{total}")), stop)
        if data.errors:
            cb.on_status(StatusEvent(run_id, "preparing", left_out_message(project, data.errors)))
        ck = checkpoint_path(project, run_id)
        if cfg.folds > 1:
            from core.training.folds import run_cross_fitted

            run_cross_fitted(run_id, cfg, data, cb, stop, recorder, ck, resumed,
                             bool(project.epochs(run_id)), trainers)
        else:
            trainers.append(Trainer(run_id, cfg, data, cb, stop, recorder, ck))
            trainers[-1].run(resumed, bool(project.epochs(run_id)))
    except TrainingStopped:
        epoch = trainers[-1].offset + trainers[-1].epoch if trainers else 0
        if stop() == "stop":
            status, msg = "stopped", f"stopped after epoch {epoch} of {total}"
        else:
            status = "paused"
            msg = f"paused after epoch {epoch} of {total}; resume continues from there"
        recorder.status(status, msg)
        cb.on_status(StatusEvent(run_id, status, msg))
        return run_id
    except BaseException as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and exc.strerror:
            msg = exc.strerror  # "disk full: PATH"
        # the disk may still be full: report the first failure, not this one
        with contextlib.suppress(sqlite3.Error):
            recorder.status("failed", msg)
        cb.on_status(StatusEvent(run_id, "failed", msg))
        raise
    recorder.status("finished")
    cb.on_status(StatusEvent(run_id, "finished", f"{total} epochs"))
    return run_id
