"""Starting a run: :func:`train` creates (or resumes) a run in the project file,
loads the data and trains it, in one process or in each process of a
``torchrun`` launch (:mod:`core.training.distributed`).

In a distributed run rank 0 does everything that touches the project: it
resolves the run (creating it, or checking that it can be resumed), builds the
image cache and reads the labels, then sends the other ranks the settings and
the arrays they train on; they never open the project file. A failure on rank 0
before training reaches the other ranks as :class:`PeerError` with its message,
a stop while preparing as a pause, so no rank waits for a peer that is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.project import Lease, Project, ProjectError
from core.skill import not_learnt_message
from core.training.checkpoints import checkpoint_path
from core.training.config import TrainConfig
from core.training.data import StopFn, TrainData, TrainingStopped, load_data
from core.training.distributed import Dist, PeerError
from core.training.events import Callbacks, StatusEvent
from core.training.loop import Trainer
from core.training.predict import pick_device
from core.training.recorder import ProjectRecorder, Recorder

__all__ = ["PeerError", "train"]


@dataclass(frozen=True)
class _Resolved:
    run_id: int
    config: TrainConfig
    resumed: bool


@dataclass(frozen=True)
class _Prepared:
    data: TrainData  # the other ranks' copy: no samples or letterboxes (rank 0 scores)
    has_epochs: bool


def train(project_path: str | os.PathLike[str], config: TrainConfig | None = None,
          callbacks: Callbacks | None = None, should_stop: StopFn | None = None, *,
          resume: int | None = None, owner: str = "cli") -> int:
    """Train on the project's current labels and write the run, its epochs and its
    scores into the project file; returns the run id. ``resume`` continues a paused
    run from its checkpoint (its stored config is used; ``config`` is ignored).
    A stop (``should_stop()`` true) leaves the run 'paused' and resumable; a
    ``should_stop()`` that returns ``"stop"`` ends it for good ('stopped').
    The project's training lease is held throughout (``owner``: cli, gui or bench):
    a second trainer is refused with :class:`core.project.LeaseHeldError`.

    Under ``torchrun`` every process calls this with the same arguments and they
    train one run together; only rank 0 opens the project file and holds the lease,
    and only its ``callbacks`` hear about batches, epochs and scores (every rank
    hears the final status)."""
    cb = callbacks or Callbacks()
    stop = should_stop or (lambda: False)
    dist = Dist.from_env()
    try:
        if not dist.writer:
            return _train_peer(dist, cb, stop)
        return _train_writer(Path(project_path), config, cb, stop, resume, dist, owner)
    finally:
        dist.close()


def _resolve(project: Project, config: TrainConfig | None, resume: int | None,
             dist: Dist) -> _Resolved:
    if resume is not None:
        run = project.run(resume)
        origin = run.params.get("origin")
        if origin:
            raise ProjectError(f"{project.path}: run {resume} was imported from "
                               f"{origin.get('pack_path', 'a pack')}; resume it where it trains")
        if run.status in ("finished", "stopped"):
            raise ProjectError(f"{project.path}: run {resume} is {run.status}; "
                               "nothing to resume")
        return _Resolved(resume, TrainConfig.from_dict(run.params["config"]), True)
    cfg = config or TrainConfig()
    if project.schema is None:  # before a run is written with no epoch count
        raise ProjectError(f"{project.path}: the project has no labels to train on")
    # automatic epochs and weight decay become numbers here, stored for the run's life
    # (resume included)
    cfg = cfg.for_task(project.schema.task, project.count_training_samples())
    device = str(pick_device(cfg.device)) + (f" x{dist.world}" if dist.active else "")
    run_id = project.create_run(cfg.method, {"config": cfg.to_dict()}, device=device)
    return _Resolved(run_id, cfg, False)


def _train_writer(path: Path, config: TrainConfig | None, cb: Callbacks, user_stop: StopFn,
                  resume: int | None, dist: Dist, owner: str) -> int:
    project: Project | None = None
    lease: Lease | None = None

    def resolve() -> _Resolved:
        nonlocal project, lease
        project = Project.open(path)
        lease = project.acquire_lease(resume, owner)
        r = _resolve(project, config, resume, dist)
        lease.set_run(r.run_id)
        return r

    def stop() -> Any:
        assert lease is not None
        lease.heartbeat()  # stop checks run every batch: the trainer's pulse
        return user_stop()

    try:
        r = dist.run_on_writer(resolve)
        assert project is not None
        return _train_run(project, r.run_id, r.config, cb, stop, r.resumed, dist)
    finally:
        if lease is not None:
            lease.release()
        if project is not None:
            project.close()


def left_out_message(project: Project, errors: dict[int, str]) -> str:
    """One line on the samples a run leaves out because their image cannot be used."""
    from core.image_problems import image_problems

    kinds = Counter(p.kind for sid, p in image_problems(project.cache_dir).items()
                    if sid in errors)
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "unreadable"
    return (f"left out {len(errors)} images that cannot be used ({detail}); "
            "`gumshoe info` lists them")


def _check_world(cfg: TrainConfig, data: TrainData, dist: Dist) -> None:
    if dist.active and min(cfg.batch_size, len(data.train)) < 2 * dist.world:
        raise ValueError(f"batch size {cfg.batch_size} is too small for {dist.world} processes "
                         "(each needs at least 2 samples of every batch)")


def _train_run(project: Project, run_id: int, cfg: TrainConfig, cb: Callbacks, stop: StopFn,
               resumed: bool, dist: Dist) -> int:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    recorder = ProjectRecorder(project, run_id)
    recorder.status("running", "preparing", pid=os.getpid())
    cb.on_status(StatusEvent(run_id, "preparing", "loading images"))
    trainers: list[Trainer] = []
    total = _total_epochs(cfg)

    def prepare() -> _Prepared:
        data = load_data(project, cfg.image_size,
                         lambda done, total: cb.on_status(StatusEvent(
                             run_id, "preparing", f"caching images {done}/{total}")), stop)
        if data.errors:
            cb.on_status(StatusEvent(run_id, "preparing", left_out_message(project, data.errors)))
        _check_world(cfg, data, dist)
        return _Prepared(data, bool(project.epochs(run_id)))

    try:
        prepared = dist.run_on_writer(prepare, lambda p: dataclasses.replace(
            p, data=dataclasses.replace(p.data, samples=[], letterboxes=[])))
        _fit(run_id, cfg, prepared.data, cb, stop, recorder, checkpoint_path(project, run_id),
             resumed, prepared.has_epochs, trainers, dist)
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
    finally:
        for t in trainers:
            t.close()
    epochs = project.epochs(run_id)  # the last one stored: a resumed run's too
    warning = not_learnt_message(epochs[-1].metrics.get("skill") if epochs else None,
                                 prepared.data.task)
    recorder.status("finished", warning)
    cb.on_status(StatusEvent(run_id, "finished", warning or f"{total} epochs"))
    return run_id


def _train_peer(dist: Dist, cb: Callbacks, stop: StopFn) -> int:
    """Ranks > 0: wait for rank 0's run and data, then train with it, writing nothing."""
    r: _Resolved = dist.run_on_writer(_on_writer_only)
    cfg = r.config
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    trainers: list[Trainer] = []
    try:
        prepared: _Prepared = dist.run_on_writer(_on_writer_only)
        _fit(r.run_id, cfg, prepared.data, Callbacks(), stop, Recorder(),
             Path(os.devnull), r.resumed, prepared.has_epochs, trainers, dist)
    except TrainingStopped:
        status = "stopped" if stop() == "stop" else "paused"
        cb.on_status(StatusEvent(r.run_id, status, status))
        return r.run_id
    finally:
        for t in trainers:
            t.close()
    cb.on_status(StatusEvent(r.run_id, "finished", f"{_total_epochs(cfg)} epochs"))
    return r.run_id


def _on_writer_only() -> None:  # pragma: no cover - never called on the other ranks
    raise AssertionError("rank 0's work")


def _total_epochs(cfg: TrainConfig) -> int:
    return cfg.epochs * (cfg.folds + 1 if cfg.folds > 1 else 1)


def _fit(run_id: int, cfg: TrainConfig, data: TrainData, cb: Callbacks, stop: StopFn,
         recorder: Recorder, ck: Path, resumed: bool, has_epochs: bool,
         trainers: list[Trainer], dist: Dist) -> None:
    """Train the run's model(s); every rank of a distributed run calls this."""
    _check_same_images(data, dist)
    if cfg.folds > 1:
        from core.training.folds import run_cross_fitted

        run_cross_fitted(run_id, cfg, data, cb, stop, recorder, ck, resumed, has_epochs,
                         trainers, dist)
    else:
        trainers.append(Trainer(run_id, cfg, data, cb, stop, recorder, ck, dist=dist))
        trainers[-1].run(resumed, has_epochs)


def _check_same_images(data: TrainData, dist: Dist) -> None:
    """Every rank reads the same cache (a copy on each node of a multi-node run must
    be the same): the first and last training images are compared."""
    if not dist.active:
        return
    rows = data.train[[0, -1]] if len(data.train) else data.train
    if not dist.same(np.asarray(data.images[rows]).tobytes()):
        raise ProjectError(f"{data.images.path}: the image cache differs between the "
                           "processes' machines; give every node the same copy of the pack")
