"""The method seam: a method added in one module and one registry line trains, is
checkpointed and scores like the built-in ones; old (version 1) checkpoints resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.noise import apply_noise
from core.project import Project
from core.robust import REGISTRY, make_method
from core.robust.base import Method, Output, Problem
from core.training import TrainConfig, checkpoint_path, train
from tests.core.synth import make_dots_project

FAST = dict(image_size=32, batch_size=16, score_every=0, rotate_jitter=5.0)


class L1(Method):
    """A toy method: least absolute deviations, with a learnt global offset (so it has
    parameters the optimizer must see and a state the checkpoint must keep)."""

    name = "l1-toy"

    def __init__(self, problem: Problem, config: TrainConfig) -> None:
        super().__init__(problem, config)
        self.offset = torch.nn.Parameter(torch.zeros(problem.n_dims))

    def loss(self, out: Output, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return (weight * (target - out.mean - self.offset).abs()).sum(dim=1).mean()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_dots_project(tmp_path_factory.mktemp("dots"), n=160)
    with Project.open(path) as project:
        apply_noise(project, "l-ugo:0.2", seed=1)
    return path


@pytest.fixture
def project_path(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / template.name
    shutil.copy2(template, dest)
    cache = template.with_name(template.name + "-cache")
    if cache.exists():
        shutil.copytree(cache, dest.with_name(dest.name + "-cache"))
    return dest


def test_a_method_added_in_one_module_and_one_registry_line_trains_and_scores(
        project_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "l1-toy", f"{__name__}:L1")
    run_id = train(project_path, TrainConfig(method="l1-toy", epochs=2, **FAST))
    with Project.open(project_path) as project:
        assert project.run(run_id).status == "finished"
        scores = project.scores(run_id)
        assert len(scores) == project.count_samples()
        row = next(iter(scores.values()))
        assert 0 <= row.outlier_prob <= 1 and len(row.landmark_scores) == 4
        ck = torch.load(checkpoint_path(project, run_id), weights_only=True)
    # its parameter was trained (the optimizer saw it) and kept in the checkpoint
    assert ck["method"] == "l1-toy" and float(ck["method_state"]["offset"].abs().sum()) > 0


def test_unknown_methods_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown method 'median'"):
        TrainConfig(method="median")
    with pytest.raises(ValueError, match="unknown method"):
        make_method("median", Problem("age", 1, 1), TrainConfig())


def test_a_version_1_checkpoint_of_a_paused_run_resumes(project_path: Path) -> None:
    """A run paused by the previous release: its config says "deepgum" (no scale head
    then) and its checkpoint holds the mixture as "criterion" and "train_res"."""
    cfg = TrainConfig(method="deepgum-global", head="fc", epochs=2, **FAST)  # as v1 trained
    stop = {"now": False}

    class PauseAfterFirst:
        def on_status(self, e: object) -> None: ...
        def on_batch(self, e: object) -> None: ...
        def on_estep(self, e: object) -> None: ...
        def on_scores(self, e: object) -> None: ...

        def on_epoch_end(self, e: object) -> None:
            stop["now"] = True

    run_id = train(project_path, cfg, PauseAfterFirst(), lambda: stop["now"])  # type: ignore[arg-type]
    with Project.open(project_path) as project:
        path = checkpoint_path(project, run_id)
        ck = torch.load(path, weights_only=True)
        extra = ck["method_state"]["_extra_state"]
        old = {k: v for k, v in ck.items() if k != "method_state"}
        old.update(version=1, method="deepgum", criterion=extra["mixture"],
                   train_res=extra["train_res"])
        torch.save(old, path)
        config = {k: v for k, v in cfg.to_dict().items()
                  if k not in ("config_version", "head", "folds")}
        config["method"] = "deepgum"
        project.update_run(run_id, params={"config": config})
    assert train(project_path, resume=run_id) == run_id
    with Project.open(project_path) as project:
        assert project.run(run_id).status == "finished"
        assert [e.epoch for e in project.epochs(run_id)] == [0, 1]
        row = next(iter(project.scores(run_id).values()))
        assert np.isfinite(row.score)


def test_cross_fitting_judges_each_training_label_by_a_model_that_never_saw_it(
        project_path: Path) -> None:
    from core.models import build_model
    from core.robust import make_method
    from core.scoring import score_rows
    from core.training import load_data, predict
    from core.training.folds import OutOfFold, fold_of

    cfg = TrainConfig(epochs=2, folds=3, seed=2, **FAST)
    run_id = train(project_path, cfg)
    with Project.open(project_path) as project:
        assert [e.epoch for e in project.epochs(run_id)] == list(range(8))  # 3 folds + final
        stored = project.scores(run_id)
        data = load_data(project, cfg.image_size)
        base = checkpoint_path(project, run_id)
    fold = fold_of(len(data.train), 3, cfg.seed)
    assert np.bincount(fold).max() - np.bincount(fold).min() <= 1  # balanced folds
    oof = OutOfFold(base.with_name(f"run-{run_id}-oof.npz"), data, 3)
    assert oof.done.all()
    cpu = torch.device("cpu")
    for f in range(3):
        ck = torch.load(base.with_name(f"run-{run_id}-fold{f}.pt"), weights_only=True)
        trained_on = set(ck["train_ids"].tolist())
        held = data.ids[data.train[fold == f]]
        assert trained_on.isdisjoint(held.tolist())  # the fold model never saw its fold
        assert trained_on | set(held.tolist()) == set(data.ids[data.train].tolist())
        model = build_model(data.n_dims, "cnn", cfg.image_size, n_scales=data.n_points,
                            head=cfg.head_for(data.task))
        model.load_state_dict(ck["model"])
        p = predict(model, data, data.train[fold == f], cpu, cfg.tta, None, False)
        np.testing.assert_allclose(oof.mean[fold == f], p.mean, atol=1e-5)
    # the stored scores judge the out-of-fold predictions; suggestions are the final model's
    ck = torch.load(base, weights_only=True)
    model = build_model(data.n_dims, "cnn", cfg.image_size, n_scales=data.n_points,
                            head=cfg.head_for(data.task))
    model.load_state_dict(ck["model"])
    method = make_method(cfg.method, data.problem, cfg)
    method.load_state_dict(ck["method_state"])
    shown = predict(model, data, np.arange(len(data.ids)), cpu, cfg.tta, None, False)
    rows = {r.sample_id: r for r in score_rows(data, oof.judged(data.train, shown), method, shown)}
    for sid, row in stored.items():
        assert row.score == pytest.approx(rows[sid].score, rel=1e-4, abs=1e-4)
        np.testing.assert_allclose(row.prediction, rows[sid].prediction, atol=1e-3)
    in_sample = {r.sample_id: r.score for r in score_rows(data, shown, method)}
    assert any(abs(in_sample[s] - stored[s].score) > 1e-3 for s in stored)


def test_reviewed_labels_are_held_as_inliers_when_the_project_trains_again(
        project_path: Path) -> None:
    """A reviewer confirmed or fixed a label: the next run trains on it with weight 1
    (responsibility 1, also through the left/right swap check) and does not fit it
    as an outlier when scoring."""
    from core.robust.mixture import GaussianUniformMixture

    with Project.open(project_path) as project:
        truth = project.contamination()
        train_ids = [s.id for s in project.samples(split="train")]
        wrong = [sid for sid in train_ids if truth.get(sid, (False, []))[1]][:4]
        for sid in wrong[:2]:
            project.set_review(sid, "confirmed", "ana")
        for sid in wrong[2:]:
            project.set_review(sid, "fixed", "ana")
    stop = {"now": False}

    class PauseAfterSecond:
        def on_status(self, e: object) -> None: ...
        def on_batch(self, e: object) -> None: ...
        def on_estep(self, e: object) -> None: ...
        def on_scores(self, e: object) -> None: ...

        def on_epoch_end(self, e: object) -> None:
            stop["now"] = getattr(e, "epoch", 0) >= 1

    cfg = TrainConfig(epochs=4, **FAST)
    run_id = train(project_path, cfg, PauseAfterSecond(), lambda: stop["now"])  # type: ignore[arg-type]
    with Project.open(project_path) as project:
        ck = torch.load(checkpoint_path(project, run_id), weights_only=True)
        order = list(project.samples())
    extra = ck["method_state"]["_extra_state"]
    mix = GaussianUniformMixture.from_state_dict(extra["mixture"])
    train_pos = {int(sid): i for i, sid in enumerate(ck["train_ids"].tolist())}
    assert mix.r is not None
    for sid in wrong:
        assert (mix.r[train_pos[sid]] == 1.0).all()  # held as an inlier everywhere
        assert float(extra["swap_q"][train_pos[sid]]) == 0.0
    others = [train_pos[s.id] for s in order if s.id in train_pos and s.id not in wrong
              and truth.get(s.id, (False, []))[1]]
    assert (mix.r[others] < 0.5).any()  # the same kind of label, unreviewed, is not
