"""Cross-fitting (``TrainConfig.folds`` = K > 1): out-of-sample scores.

The training samples are split into K seeded folds; K models each train on all
but one fold and predict the fold they did not see, then a final model trains on
every training sample. Each training label is judged on the prediction of the
model that never learnt it (the practice cleanlab recommends: a model can partly
learn a wrong label, which then looks right to it); the validation and test
samples, which no model trained on, are judged on the final model, whose
predictions are also the suggestions shown to the annotator. Epochs are numbered
across the K + 1 models (``(K + 1) * epochs`` in all). A pause keeps every
finished fold's predictions (``run-N-oof.npz`` beside the checkpoints) and the
current model's checkpoint, so a resume carries on where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from core.training.config import TrainConfig
from core.training.data import StopFn, TrainData
from core.training.distributed import SINGLE, Dist
from core.training.events import Callbacks
from core.training.loop import Trainer
from core.training.predict import Predictions
from core.training.recorder import Recorder


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """The fold (0 .. folds - 1) of each of ``n`` training samples: balanced, seeded."""
    return np.random.default_rng([seed, 7919]).permutation(n) % folds


class OutOfFold:
    """The held-out predictions of the fold models, kept on disk between folds."""

    def __init__(self, path: Path, data: TrainData, folds: int, writer: bool = True) -> None:
        self.path, self.folds, self.writer = path, folds, writer
        self.mean = np.zeros((len(data.train), data.n_dims))
        self.log_scale: np.ndarray | None = None
        self.spread: np.ndarray | None = None
        self.done = np.zeros(folds, bool)
        self.train_ids = data.ids[data.train]
        if writer and path.exists():
            with np.load(path) as z:
                if np.array_equal(z["train_ids"], self.train_ids) and len(z["done"]) == folds:
                    self.mean, self.done = z["mean"], z["done"]
                    self.log_scale = z.get("log_scale")
                    self.spread = z.get("spread")

    def put(self, fold: int, rows: np.ndarray, p: Predictions) -> None:
        self.mean[rows] = p.mean
        if p.log_scale is not None:
            if self.log_scale is None:
                self.log_scale = np.zeros((len(self.mean), p.log_scale.shape[1]))
            self.log_scale[rows] = p.log_scale
        if p.spread is not None:
            if self.spread is None:
                self.spread = np.zeros_like(self.mean)
            self.spread[rows] = p.spread
        self.done[fold] = True
        if not self.writer:
            return
        arrays = {"mean": self.mean, "done": self.done, "train_ids": self.train_ids}
        if self.log_scale is not None:
            arrays["log_scale"] = self.log_scale
        if self.spread is not None:
            arrays["spread"] = self.spread
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path)

    def judged(self, train: np.ndarray, shown: Predictions) -> Predictions:
        """The final model's predictions with every training sample's replaced by its
        out-of-fold one."""
        mean = shown.mean.copy()
        mean[train] = self.mean
        log_scale = None
        if shown.log_scale is not None and self.log_scale is not None:
            log_scale = shown.log_scale.copy()
            log_scale[train] = self.log_scale
        spread = None
        if shown.spread is not None and self.spread is not None:
            spread = shown.spread.copy()
            spread[train] = self.spread
        return Predictions(mean, log_scale, spread)


def run_cross_fitted(run_id: int, cfg: TrainConfig, data: TrainData, cb: Callbacks,
                     stop: StopFn, recorder: Recorder, ck_path: Path, resumed: bool,
                     has_epochs: bool, trainers: list[Trainer], dist: Dist = SINGLE) -> None:
    """Train the K fold models and the final one (see the module docstring), each
    appended to ``trainers`` as it starts (the last is the one a pause stops in).
    In a distributed run every rank trains each model; rank 0 keeps the files and
    tells the others what they hold."""
    k, e = cfg.folds, cfg.epochs
    total = (k + 1) * e
    fold = fold_of(len(data.train), k, cfg.seed)
    oof = OutOfFold(ck_path.with_name(f"run-{run_id}-oof.npz"), data, k, dist.writer)
    if dist.active:
        oof.mean, oof.log_scale, oof.spread, oof.done = dist.broadcast(
            (oof.mean, oof.log_scale, oof.spread, oof.done) if dist.writer else None)

    def exists(path: Path) -> bool:
        return bool(dist.broadcast(path.exists() if dist.writer else None))

    for f in range(k):
        if oof.done[f]:
            continue
        sub = dataclasses.replace(data, train=data.train[fold != f])
        path = ck_path.with_name(f"run-{run_id}-fold{f}.pt")
        t = Trainer(run_id, cfg, sub, cb, stop, recorder, path, offset=f * e, total=total,
                    scores=False, dist=dist)
        trainers.append(t)
        t.run(resumed and exists(path), False)
        held = np.flatnonzero(fold == f)
        oof.put(f, held, t.predict_all(data.train[held]))
        t.close()
    final = Trainer(run_id, cfg, data, cb, stop, recorder, ck_path, offset=k * e, total=total,
                    dist=dist)
    final.judged = lambda shown: oof.judged(data.train, shown)
    trainers.append(final)
    final_ck = exists(ck_path)
    final.run(resumed and final_ck, has_epochs and final_ck)
