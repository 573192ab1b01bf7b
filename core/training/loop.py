"""The training loop: a robust regressor on a project's current labels, its
progress told to callbacks and persisted through one recorder.

Plain Python, no Qt: a :class:`Trainer` takes a :class:`TrainConfig`, a
:class:`Callbacks` object and a ``should_stop`` flag (checked every batch, every
evaluation batch and every EM iteration). A stop is a pause: the run keeps its
last epoch-end checkpoint and a resume continues it, deterministically (the
random generator's state is saved too). :mod:`core.training.run` starts runs.

Each epoch: one pass over the training samples with flip and scale/rotation/
translation jitter (labels moved with the image), then the method's
between-epoch hook (DeepGUM's E-step and the refresh of its residuals), then an
evaluation pass (eval mode, no augmentation) over the validation samples for the
validation error. Every ``score_every`` epochs and at the end, every sample is
scored from a full eval pass (flip test-time augmentation) and the scores
written. The loop knows no method by name (:mod:`core.robust`).

The data path keeps a device busy: batches come from a loader over the
memory-mapped cache (:mod:`core.training.loader`), the method's targets and
weights go to the device once per epoch (they change only between epochs),
augmentation runs on the device, losses add up there, and nothing waits for
the device per batch (progress reads the loss without waiting:
:class:`~core.training.throughput.LossProbe`). In a distributed run
(:mod:`core.training.distributed`) each rank trains on its share of every
batch, evaluation passes are sharded and gathered, and rank 0 alone writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.models import build_model
from core.robust import make_method
from core.robust.base import EStepInfo
from core.scoring import sample_flagged, score_rows
from core.skill import skill
from core.training.augmentation import apply_jitter, draw_jitter, unaugment_residuals, warp_rows
from core.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    check_states,
    load_checkpoint,
    save_checkpoint,
)
from core.training.config import TrainConfig
from core.training.data import StopFn, TrainData, TrainingStopped
from core.training.distributed import SINGLE, Dist
from core.training.errors import average_label, average_label_error, val_error
from core.training.events import (
    BatchProgress,
    Callbacks,
    EpochEvent,
    EStepEvent,
    ScoresEvent,
    StatusEvent,
)
from core.training.loader import Batches, auto_workers
from core.training.predict import Predictions, eval_batch, pick_device, predict, to_input
from core.training.recorder import Recorder
from core.training.step import PassStats, TrainStep, lr_at
from core.training.throughput import DeviceMonitor, LossProbe, PhaseClock

PROGRESS_INTERVAL_S = 0.1
HOST_WARP = True  # on a CPU, jitter the uint8 rows with OpenCV (see warp_rows)


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
        return self.trainer.stop_requested()


class Trainer:
    """One run's model, method, optimizer and loop (see the module docstring)."""

    def __init__(self, run_id: int, cfg: TrainConfig, data: TrainData, callbacks: Callbacks,
                 should_stop: StopFn, recorder: Recorder, ck_path: Path,
                 writer: bool = True, offset: int = 0, total: int | None = None,
                 scores: bool = True, dist: Dist = SINGLE) -> None:
        if cfg.epochs < 1:
            raise ValueError("automatic epochs (0) are fixed before training: "
                             "TrainConfig.for_task, as train() does")
        self.run_id, self.cfg, self.data = run_id, cfg, data
        self.cb, self.should_stop, self.recorder = callbacks, should_stop, recorder
        self.dist = dist
        self.ck_path, self.writer = ck_path, writer and dist.writer
        # a run of several models (cross-fitting) numbers its epochs on from ``offset``
        # of ``total``; only a model that ``scores`` writes the run's scores
        self.offset, self.total, self.scores = offset, total or cfg.epochs, scores
        self.baseline_error = average_label_error(data, data.val)
        self.device = dist.device(pick_device(cfg.device))
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.method = make_method(cfg.method, data.problem, cfg)
        n_scales = data.n_points if self.method.predicts_scale else 0
        self.model = build_model(data.n_dims, cfg.backbone, cfg.image_size, cfg.weights,
                                 n_scales=n_scales, head=cfg.head_for(data.task))
        self.model.to(self.device).to(memory_format=torch.channels_last)
        self.method.to(self.device)
        if dist.rank:  # dropout masks of their own (the weights come from rank 0)
            torch.manual_seed(_rank_seed(cfg.seed, dist.rank, 0))
        self.optimizer = torch.optim.AdamW(
            [*self.model.parameters(), *self.method.parameters()], lr=cfg.lr,
            weight_decay=cfg.weight_decay_for(data.task))
        self.step_module = TrainStep(self.model, self.method, data.n_dims, cfg.amp)
        self.net: nn.Module = dist.wrap(self.step_module, self.device)
        if cfg.compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        workers = cfg.workers if cfg.workers >= 0 else auto_workers(self.device, dist.local_world)
        self.batches = Batches(data.images, self.device, workers)
        self.eval_batch = eval_batch(self.device, cfg.image_size)
        self.perm = (None if data.flip_perm is None
                     else torch.as_tensor(data.flip_perm).to(self.device))
        self.monitor = DeviceMonitor(self.device)
        self.epoch = 0
        self.pending_estep_s = 0.0  # the method's fit before the first epoch, counted with it
        # cross-fitting: the predictions the scores judge (out-of-fold), from those shown
        self.judged: Callable[[Predictions], Predictions] | None = None

    def close(self) -> None:
        """Stop the loader's workers."""
        self.batches.close()

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
        """Load the checkpoint (rank 0 reads it; the other ranks get its contents)."""
        ck = self.dist.run_on_writer(
            lambda: load_checkpoint(self.ck_path, self.run_id, self.cfg.method, self.cfg.epochs))
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
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            # load_state_dict's first line only says "Error(s) in loading ...:"; the next
            # names the keys
            msg = " ".join(lines[:2])[:200] if lines else type(exc).__name__
            raise CheckpointError(f"{self.ck_path}: does not fit this model ({msg})") from None
        self.epoch = int(ck["epoch"])
        if self.dist.rank:
            torch.manual_seed(_rank_seed(self.cfg.seed, self.dist.rank, self.epoch))

    # ----------------------------------------------------------- steps

    def stop_requested(self) -> bool:
        """Whether to stop now: asked here, or on any rank of a distributed run (every
        rank calls this at the same points)."""
        return self.dist.any(bool(self.should_stop()))

    def check_stop(self) -> None:
        if self.stop_requested():
            raise TrainingStopped

    def epoch_targets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The method's targets and weights of every training sample, on the device
        (they change only between epochs: one copy per epoch, none per batch)."""
        data = self.data
        pos = np.arange(len(data.train))
        targets, mask = self.method.batch_targets(pos, data.targets[data.train],
                                                  data.mask[data.train])
        w = self.method.weights(pos) * mask
        return (torch.from_numpy(np.ascontiguousarray(targets, np.float32)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(w, np.float32)).to(self.device))

    def train_epoch(self) -> PassStats:
        """One pass over the training samples. Each global batch of ``batch_size``
        samples (the ragged last one dropped) is split between the ranks; the jitter
        is drawn for the whole batch on every rank, each applying its rows."""
        cfg, data, dev, dist = self.cfg, self.data, self.device, self.dist
        self.net.train()
        order = torch.randperm(len(data.train), generator=self.gen).numpy()
        bs = min(cfg.batch_size, len(order))
        n_batches = len(order) // bs  # drop the ragged last batch
        lo, hi = dist.bounds(bs)
        plan = [(data.train[pos], pos) for pos in
                (order[b * bs:(b + 1) * bs][lo:hi] for b in range(n_batches))]
        y_all, w_all = self.epoch_targets()
        total_steps = cfg.epochs * n_batches
        # DDP averages the ranks' gradients: weigh each rank's mean loss by its share
        share = (hi - lo) * dist.world / bs
        want_res = self.method.wants_training_residuals()
        kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        probe = LossProbe(dev)
        self.monitor.start()
        loss_sum = torch.zeros((), device=dev)  # summed on the device: no host sync per batch
        seen = 0
        t0 = last = time.perf_counter()
        clock = PhaseClock()
        batches = self.batches(plan)
        for b in range(n_batches):
            self.check_stop()
            clock.mark("other")
            images, keys = next(batches)
            clock.mark("wait")
            pos = keys.to(dev, non_blocking=True)
            jitter = draw_jitter(bs, cfg, data, self.gen).rows(lo, hi)
            if dev.type == "cpu" and HOST_WARP:  # the uint8 rows (OpenCV): cheaper than grid_sample
                images, y, wt, aug = warp_rows(images, y_all[pos], w_all[pos], jitter, data,
                                               self.perm)
                x = to_input(images, dev)
            else:  # on the accelerator, beside the model
                x, y, wt, aug = apply_jitter(to_input(images, dev), y_all[pos], w_all[pos],
                                             jitter, data, self.perm)
            for g in self.optimizer.param_groups:
                g["lr"] = lr_at(self.epoch * n_batches + b, total_steps, cfg.lr)
            clock.mark("prepare")
            loss, mean, log_scale = self.net(x, y, wt)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * share if share != 1.0 else loss).backward()
            self.optimizer.step()
            loss_sum += loss.detach()
            clock.mark("step")
            if want_res:
                r = unaugment_residuals((y - mean).detach(), aug, data, self.perm)
                ls = None if log_scale is None else log_scale.detach()
                if ls is not None and self.perm is not None and bool(aug.flip.any()):
                    assert aug.flip_device is not None
                    ls = torch.where(aug.flip_device[:, None], ls[:, self.perm], ls)
                kept.append((pos, r, ls))
            seen += len(keys)
            now = time.perf_counter()
            if now - last >= PROGRESS_INTERVAL_S or b == n_batches - 1:
                last = now
                self.monitor.sample()
                self.cb.on_batch(BatchProgress(
                    self.run_id, self.offset + self.epoch, self.total, b + 1, n_batches,
                    probe.read(loss), seen * dist.world / max(now - t0, 1e-9)))
        clock.mark("other")  # the last batch's bookkeeping
        loss_total = float(loss_sum)  # the one wait for the device in the pass
        clock.mark("step")  # on a GPU: the device finishing the pass's queued steps
        seconds = time.perf_counter() - t0
        if want_res:
            self.observe(kept)
        total_loss, total_seen, wait_share = dist.sum([loss_total * share, seen,
                                                       clock.seconds["wait"] / max(seconds, 1e-9)])
        return PassStats(total_loss / dist.world / max(n_batches, 1),
                         total_seen / max(seconds, 1e-9), wait_share / dist.world,
                         self.monitor.metrics(), dict(clock.seconds))

    def observe(self, kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> None:
        """Hand the pass's training residuals to the method, every rank's (one copy
        to the host per epoch)."""
        if kept:
            pos = torch.cat([k[0] for k in kept]).cpu().numpy()
            res = torch.cat([k[1] for k in kept]).float().cpu().numpy()
            ls = None if kept[0][2] is None else torch.cat([k[2] for k in kept]).float().cpu().numpy()  # type: ignore[misc]
        else:
            pos, res, ls = np.zeros(0, np.int64), np.zeros((0, self.data.n_dims), np.float32), None
        pos, res, ls = self.dist.gather(pos), self.dist.gather(res), self.dist.gather(ls)
        assert pos is not None and res is not None
        self.method.observe_batch(pos, torch.from_numpy(res),
                                  None if ls is None else torch.from_numpy(ls))

    def evaluate(self, index: np.ndarray, tta: bool) -> Predictions:
        """Predictions for the samples ``index`` (eval mode; sharded over the ranks of
        a distributed run and gathered, from rank 0's batch-norm statistics)."""
        dist = self.dist
        if not dist.active:
            return predict(self.model, self.data, index, self.device, tta,
                           self.stop_requested, self.cfg.amp, self.eval_batch, self.batches)
        dist.sync_buffers(self.model)
        steps = math.ceil(math.ceil(len(index) / dist.world) / self.eval_batch)  # largest shard's
        p = predict(self.model, self.data, dist.shard(index), self.device, tta,
                    self.stop_requested, self.cfg.amp, self.eval_batch, self.batches, steps)
        mean = dist.gather(p.mean)
        assert mean is not None
        return Predictions(mean, dist.gather(p.log_scale), dist.gather(p.spread))

    def train_residuals(self, positions: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """Eval-mode residuals and log scales of the training samples at ``positions``."""
        data = self.data
        pos = np.arange(len(data.train)) if positions is None else positions
        p = self.evaluate(data.train[pos], False)
        return data.targets[data.train[pos]] - p.mean, p.log_scale

    def validate(self) -> tuple[float | None, float]:
        t0 = time.perf_counter()
        data = self.data
        p = self.evaluate(data.val, False)
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
        return self.evaluate(index, self.cfg.tta)

    def write_scores(self) -> None:
        if not self.scores:
            return
        t0 = time.perf_counter()
        data = self.data
        shown = self.predict_all()
        if not self.writer:  # the pass is shared; the scoring and the writing are rank 0's
            return
        judged = self.judged(shown) if self.judged is not None else shown
        rows = score_rows(data, judged, self.method, shown)
        self.recorder.scores(rows)
        top = sorted(((r.sample_id, float(r.score)) for r in rows), key=lambda t: -t[1])[:20]
        n_flagged = sum(1 for r in rows if sample_flagged(r.score))
        self.cb.on_scores(ScoresEvent(self.run_id, self.offset + self.epoch, len(rows), n_flagged,
                                      tuple(top), time.perf_counter() - t0))

    # ----------------------------------------------------------- run

    def run(self, resumed: bool, has_epochs: bool) -> None:
        cfg = self.cfg
        # a run paused before its first checkpoint (while caching images) starts afresh
        has_checkpoint = self.dist.broadcast(self.ck_path.exists() if self.writer else None)
        if resumed and (has_checkpoint or has_epochs):
            self.restore()
        else:
            d = self.data
            train_mean = average_label(d)
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
            stats = self.train_epoch()
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
                                       "skill": skill(verr, self.baseline_error),
                                       "train_images": int(len(self.data.train)),
                                       "data_wait_share": stats.data_wait_share,
                                       "processes": self.dist.world,
                                       "workers": self.batches.workers,
                                       **stats.device, **self.method.metrics()}
            self.recorder.epoch(self.offset + self.epoch, train_loss=stats.loss, val_error=verr,
                                inlier_fraction=inlier, images_per_s=stats.images_per_s,
                                seconds=seconds, metrics=metrics)
            summ = metrics.get("mixture", {})
            hist = self.method.histogram()
            event = EpochEvent(self.run_id, self.offset + self.epoch, self.total, stats.loss, verr,
                               inlier, stats.images_per_s, seconds, eval_s, estep_s, hist,
                               summ.get("pi_mean"), summ.get("std_median"),
                               stats.data_wait_share, stats.device.get("gpu_util"),
                               stats.device.get("gpu_memory_mb"), self.dist.world)
            self.epoch += 1
            last = self.epoch == cfg.epochs
            if last or (cfg.score_every > 0 and self.epoch % cfg.score_every == 0):
                self.write_scores()
            self.save()
            self.cb.on_epoch_end(event)


def _rank_seed(seed: int, rank: int, epoch: int) -> int:
    """The torch seed of rank > 0 (dropout): its own, and fresh after a resume."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])
