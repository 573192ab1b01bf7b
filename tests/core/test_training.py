"""The trainer on a tiny real dataset (ellipse images whose extreme points are the
landmarks): outliers separated, scores written and read back, stop, resume and
refused checkpoints. Small images and few epochs keep it to seconds on 2 cores."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.images import content_hash
from core.metrics import auroc
from core.models import build_model
from core.noise import apply_noise
from core.project import LabelSchema, NewSample, Project
from core.skill import not_learnt_message, run_warning, skill
from core.training import (
    BatchProgress,
    Callbacks,
    CheckpointError,
    EpochEvent,
    EStepEvent,
    ScoresEvent,
    StatusEvent,
    TrainConfig,
    TrainData,
    augment,
    checkpoint_path,
    load_data,
    predict,
    train,
    unaugment_residuals,
)
from tests.core.synth import draw_dots, make_dots_project

REPO = Path(__file__).resolve().parents[2]

FAST = dict(image_size=32, batch_size=16, score_every=0, rotate_jitter=5.0)


def train_res(ck: dict) -> torch.Tensor:
    """DeepGUM's E-step residuals kept in a checkpoint."""
    return ck["method_state"]["_extra_state"]["train_res"]


class Recorder(Callbacks):
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_status(self, event: StatusEvent) -> None:
        self.events.append(event)

    def on_batch(self, event: BatchProgress) -> None:
        self.events.append(event)

    def on_estep(self, event: EStepEvent) -> None:
        self.events.append(event)

    def on_epoch_end(self, event: EpochEvent) -> None:
        self.events.append(event)

    def on_scores(self, event: ScoresEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


class StopAfterEpoch(Callbacks):
    """Asks the run to pause once epoch ``last`` (0-based) has ended; ``should_stop``
    is its flag, ``reset()`` clears it for a resume."""

    def __init__(self, last: int = 0) -> None:
        self.last, self.now = last, False

    def on_epoch_end(self, event: EpochEvent) -> None:
        self.now = self.now or event.epoch >= self.last

    def should_stop(self) -> bool:
        return self.now


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ellipses")
    path = make_dots_project(folder, n=240)
    with Project.open(path) as project:
        apply_noise(project, "l-ugo:0.2", seed=0)
    return path


@pytest.fixture
def project_path(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / template.name
    shutil.copy2(template, dest)
    cache = template.with_name(template.name + "-cache")
    if cache.exists():
        shutil.copytree(cache, dest.with_name(dest.name + "-cache"))
    return dest


def landmark_auroc(project: Project, run_id: int) -> float:
    scores, truth = project.scores(run_id), project.contamination()
    s, t = [], []
    for sample in project.samples(split="train"):
        bad = set(truth.get(sample.id, (False, []))[1])
        for k, v in enumerate(scores[sample.id].landmark_scores):
            s.append(v)
            t.append(k in bad)
    result = auroc(s, t)
    assert result is not None
    return result


def test_a_tiny_run_separates_injected_outliers(project_path: Path) -> None:
    with Project.open(project_path) as project:
        excluded = [s.id for s in project.samples(split="train")[:3]]
        for sid in excluded:
            project.set_review(sid, "excluded")
    rec = Recorder()
    run_id = train(project_path, TrainConfig(epochs=6, **FAST), rec)
    with Project.open(project_path) as project:
        run = project.run(run_id)
        assert run.status == "finished" and run.params["config"]["epochs"] == 6
        assert run.message == ""  # the model learnt the data: no warning
        epochs = project.epochs(run_id)
        assert [e.epoch for e in epochs] == list(range(6))
        assert epochs[-1].metrics["skill"] > 0.5
        assert epochs[-1].metrics["train_images"] == 240 - 24 - 3  # val and excluded left out
        assert 0.6 < epochs[-1].inlier_fraction < 0.95
        assert len(epochs[-1].metrics["histogram"]) == 20
        assert landmark_auroc(project, run_id) > 0.9
        scores = project.scores(run_id)
        assert len(scores) == project.count_samples()  # every sample, excluded ones too
        # predictions come back in image pixels, near the labels of clean val samples
        errs = []
        for sample in project.samples(split="val"):
            pred = np.array(scores[sample.id].prediction).reshape(-1, 2)
            errs.append(np.linalg.norm(pred - project.current_label(sample.id).points, axis=1))
            assert len(scores[sample.id].prediction_std) == 4  # a predicted scale per point
        assert np.median(np.concatenate(errs)) < 0.1 * 48
        row = scores[excluded[0]]
        assert 0 <= row.outlier_prob <= 1 and len(row.landmark_probs) == 4
        # the sample is wrong if any point is: at least as likely as its worst point
        assert row.score >= max(row.landmark_scores) - 1e-6
    assert len(rec.of(EpochEvent)) == 6 and len(rec.of(EStepEvent)) == 6  # before epochs 1-6
    (scored,) = rec.of(ScoresEvent)
    # the scoring's own time (benchmarks/bench_epoch_shares.py): part of the run, not the epoch
    assert 0 < scored.seconds < sum(e.seconds for e in rec.of(EpochEvent))
    n_batches = rec.of(BatchProgress)[-1].batches
    assert len(rec.of(BatchProgress)) <= 6 * n_batches
    assert [e.status for e in rec.of(StatusEvent)][-1] == "finished"
    event = rec.of(EpochEvent)[0]
    assert event.pi_mean is not None and 0 < event.std_median < 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.epoch = 3  # type: ignore[misc]


def test_stop_mid_epoch_pauses_and_resume_matches_an_uninterrupted_run(
        project_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / project_path.name
    other.parent.mkdir()
    shutil.copy2(project_path, other)
    cfg = TrainConfig(epochs=2, **FAST)
    whole = train(other, cfg)

    stop = {"now": False}

    class StopInSecondEpoch(Callbacks):
        def on_batch(self, event: BatchProgress) -> None:
            if event.epoch == 1:
                stop["now"] = True

    run_id = train(project_path, cfg, StopInSecondEpoch(), lambda: stop["now"])
    with Project.open(project_path) as project:
        run = project.run(run_id)
        assert run.status == "paused" and "resume" in run.message
        assert [e.epoch for e in project.epochs(run_id)] == [0]
        assert project.scores(run_id) == {}
    assert checkpoint_path(Project.open(project_path), run_id).exists()

    assert train(project_path, resume=run_id) == run_id
    with Project.open(project_path) as project, Project.open(other) as reference:
        assert project.run(run_id).status == "finished"
        assert [e.epoch for e in project.epochs(run_id)] == [0, 1]
        a, b = project.scores(run_id), reference.scores(whole)
        assert a.keys() == b.keys()
        for sid in a:
            np.testing.assert_allclose(a[sid].prediction, b[sid].prediction, atol=1e-3)


def test_each_epoch_refreshes_a_rotating_share_of_the_estep_residuals(project_path: Path) -> None:
    cfg = TrainConfig(method="deepgum-global", epochs=4, refresh_epochs=3, seed=4, **FAST)
    stop = StopAfterEpoch(1)
    run_id = train(project_path, cfg, stop, stop.should_stop)
    with Project.open(project_path) as project:
        data = load_data(project, cfg.image_size)
        ck = torch.load(checkpoint_path(project, run_id), weights_only=True)
    model = build_model(data.n_dims, "cnn", cfg.image_size, head=cfg.head_for(data.task))
    model.load_state_dict(ck["model"])
    pred = predict(model, data, data.train, torch.device("cpu"), False, None, False).mean
    now = data.targets[data.train] - pred  # eval-mode residuals of the model after epoch 2
    kept = train_res(ck).numpy()
    fresh = np.isclose(kept, now, atol=1e-5).all(axis=1)
    # epoch 1 re-evaluated every sample, epoch 2 exactly the samples of its fold
    fold = np.random.default_rng(cfg.seed).permutation(len(data.train)) % 3 == 1
    assert np.array_equal(fresh, fold) and 0.25 < fold.mean() < 0.42
    # the training pass's own residuals (mapped back): every sample seen in the epoch
    assert len(data.train) % 24 == 0  # a batch size with no ragged batch: all are seen
    cfg = dataclasses.replace(cfg, estep_residuals="training", batch_size=24)
    stop = StopAfterEpoch(1)
    run_id = train(project_path, cfg, stop, stop.should_stop)
    with Project.open(project_path) as project:
        ck = torch.load(checkpoint_path(project, run_id), weights_only=True)
    moved = ~np.isclose(train_res(ck).numpy(), kept, atol=1e-6).all(axis=1)
    assert moved.all()


def test_training_pass_residuals_also_separate_injected_outliers(project_path: Path) -> None:
    run_id = train(project_path, TrainConfig(epochs=6, estep_residuals="training", **FAST))
    with Project.open(project_path) as project:
        assert landmark_auroc(project, run_id) > 0.9


def test_a_stop_while_preparing_leaves_a_paused_run(project_path: Path) -> None:
    run_id = train(project_path, TrainConfig(epochs=1, **FAST), should_stop=lambda: True)
    with Project.open(project_path) as project:
        assert project.run(run_id).status == "paused"
        assert not checkpoint_path(project, run_id).exists()
    train(project_path, resume=run_id)  # nothing to restore: starts afresh
    with Project.open(project_path) as project:
        assert project.run(run_id).status == "finished"
        assert len(project.scores(run_id)) == project.count_samples()


def test_corrupt_or_foreign_checkpoints_are_refused(project_path: Path) -> None:
    stop = StopAfterEpoch()
    run_id = train(project_path, TrainConfig(epochs=3, **FAST), stop, stop.should_stop)
    with Project.open(project_path) as project:
        ck = checkpoint_path(project, run_id)
    assert ck.exists()
    ck.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable Gumshoe checkpoint") as err:
        train(project_path, resume=run_id)
    assert "\n" not in str(err.value) and str(ck) in str(err.value)
    torch.save({"weights": torch.zeros(3)}, ck)
    with pytest.raises(CheckpointError, match="not a Gumshoe checkpoint"):
        train(project_path, resume=run_id)


def test_a_baseline_writes_probabilities_from_a_mixture_on_its_residuals(
        project_path: Path) -> None:
    run_id = train(project_path, TrainConfig(method="huber", epochs=3, **FAST))
    with Project.open(project_path) as project:
        row = next(iter(project.scores(run_id).values()))
        assert 0 <= row.outlier_prob <= 1 and len(row.landmark_scores) == 4
        np.testing.assert_allclose(row.landmark_probs,
                                   1 / (1 + np.exp(-np.array(row.landmark_scores))))
        assert project.epochs(run_id)[0].inlier_fraction is None
        assert landmark_auroc(project, run_id) > 0.8


def test_an_age_run_predicts_years(tmp_path: Path) -> None:
    items = [NewSample(name, name, 48, 48, content_hash(data), age=float(pts[1, 0] - pts[0, 0]),
                       split="val" if i < 10 else "train")
             for i, (name, pts, data) in enumerate(draw_dots(tmp_path, 80, 48, 1))]
    path = tmp_path / "ages.gumshoe"
    with Project.create(path, LabelSchema("age")) as project:
        source = project.add_source(tmp_path, "synthetic", "age")
        project.add_samples(source, items)
    stop = StopAfterEpoch()
    run_id = train(path, TrainConfig(epochs=2, **FAST), stop, stop.should_stop)
    with Project.open(path) as project:
        ck = torch.load(checkpoint_path(project, run_id), weights_only=True)
        before = train_res(ck)
        # ages take the automatic weight decay of their task, stored with the run and
        # given to the optimiser
        assert project.run(run_id).params["config"]["weight_decay"] == 0.05
        assert ck["optimizer"]["param_groups"][0]["weight_decay"] == 0.05
    train(path, resume=run_id)
    with Project.open(path) as project:
        after = train_res(torch.load(checkpoint_path(project, run_id), weights_only=True))
        # ages take the training pass's residuals (estep_residuals="auto"): the second
        # epoch renewed every sample's, not a rotating quarter as an eval pass would
        changed = ~torch.isclose(after, before, atol=1e-7).all(dim=1)
        assert float(changed.float().mean()) > 0.9
        scores = project.scores(run_id)
        assert len(scores) == 80
        row = next(iter(scores.values()))
        assert row.landmark_scores is None and 0 <= row.outlier_prob <= 1
        assert 0 < row.prediction[0] < 40 and row.prediction_std is not None
        assert project.epochs(run_id)[-1].val_error < 30  # years


def test_backbones_are_checked() -> None:
    assert build_model(8, "cnn", 64)(torch.zeros(2, 3, 64, 64)).shape == (2, 8)
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model(8, "cnn", 48)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model(8, "vit", 64)
    with pytest.raises(ValueError, match="takes no weights"):
        build_model(8, "cnn", 64, weights="w.pt")


def test_head_auto_keeps_what_each_config_version_built() -> None:
    """auto builds heatmap for landmarks and fc for ages today; a run stored when
    auto meant fc for landmarks (version 3) resumes with the fc head its
    checkpoint holds, one from version 2 with heatmap."""
    assert TrainConfig().head_for("landmarks") == "heatmap"
    assert TrainConfig().head_for("age") == "fc"
    v3 = TrainConfig.from_dict({**TrainConfig().to_dict(), "config_version": 3})
    assert v3.head_for("landmarks") == "fc" and v3.head_for("age") == "fc"
    v2 = TrainConfig.from_dict({**TrainConfig().to_dict(), "config_version": 2})
    assert v2.head_for("landmarks") == "heatmap" and v2.head_for("age") == "fc"
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "config_version"}
    assert TrainConfig.from_dict(old).head_for("landmarks") == "fc"


def test_config_round_trip_and_bad_settings() -> None:
    cfg = TrainConfig(method="tukey", epochs=3)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="ransac")
    # a run saved before the E-step settings existed resumes as it trained: all refreshed
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("estep_residuals", "refresh_epochs")}
    assert TrainConfig.from_dict(old).estep_residuals == "evaluation"
    assert TrainConfig.from_dict(old).refresh_epochs == 1
    with pytest.raises(ValueError, match="unknown E-step residual source"):
        TrainConfig(estep_residuals="test")
    with pytest.raises(ValueError, match="unknown device"):
        TrainConfig(device="tpu")


def test_augmentation_moves_labels_with_the_image() -> None:
    """Two blobs (red = keypoint 0, green = keypoint 1, a flip pair) drawn at their
    labels; after flip and jitter each label must sit on the blob it now names."""
    size, b = 64, 16
    grid = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.tensor([[-0.4, -0.2], [0.3, 0.25]])
    x = torch.zeros(b, 3, size, size)
    for k in range(2):
        x[:, k] = torch.exp(-((xx - pts[k, 0]) ** 2 + (yy - pts[k, 1]) ** 2) / (2 * 0.04**2))
    y = pts.reshape(1, -1).repeat(b, 1)
    w = torch.tensor([[1.0, 1.0, 2.0, 2.0]]).repeat(b, 1)
    data = dataclasses.replace(
        TrainData(np.zeros(1, np.int64), [], torch.zeros(1), np.zeros((1, 4), np.float32),
                  np.ones((1, 4), bool), [], np.zeros(1, np.int64), np.zeros(0, np.int64),
                  "landmarks", np.array([1, 0]), None))
    cfg = TrainConfig(scale_jitter=0.1, rotate_jitter=15.0, shift_jitter=0.1)
    xa, ya, wa, aug = augment(x, y, w, cfg, data, torch.Generator().manual_seed(0))
    # a residual in the augmented frame maps back to the label frame: a "prediction"
    # moved by the same transform leaves exactly its own residual y - p
    p = y + torch.tensor([[0.05, -0.02, -0.03, 0.04]])
    _, pa, _, _ = augment(x, p, w, cfg, data, torch.Generator().manual_seed(0))
    back = unaugment_residuals(ya - pa, aug, data)
    assert torch.allclose(back, y - p, atol=1e-6)
    assert not torch.allclose(ya - pa, y - p, atol=1e-3)  # the map did something
    flipped = 0
    for i in range(b):
        mass = xa[i, :2].sum(dim=(1, 2))
        cx = [(xa[i, c] * xx).sum() / mass[c] for c in range(2)]
        cy = [(xa[i, c] * yy).sum() / mass[c] for c in range(2)]
        # rotation is at most 15 degrees: red right of green means the image was mirrored
        mirrored = bool(cx[0] > cx[1])
        flipped += mirrored
        for k in range(2):
            c = 1 - k if mirrored else k  # the original keypoint that output k now names
            label = ya[i].view(2, 2)[k]
            assert abs(float(cx[c] - label[0])) < 0.02 and abs(float(cy[c] - label[1])) < 0.02
            assert float(wa[i, 2 * k]) == (1.0 if c == 0 else 2.0)  # weights travel too
    assert 0 < flipped < b  # both mirrored and plain samples in the batch


def test_the_host_warp_is_the_device_warp() -> None:
    """On a CPU the trainer warps the uint8 rows with OpenCV (``warp_rows``) instead of
    ``grid_sample`` on the float input: the same jitter must give the same image (up
    to OpenCV's interpolation rounding, borders included) and exactly the same labels
    and map."""
    from core.training.augmentation import apply_jitter, draw_jitter, warp_rows
    from core.training.predict import to_input

    size, b = 64, 12
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8))
    y = torch.from_numpy(rng.uniform(-0.8, 0.8, (b, 4)).astype(np.float32))
    w = torch.ones(b, 4)
    data = dataclasses.replace(
        TrainData(np.zeros(1, np.int64), [], torch.zeros(1), np.zeros((1, 4), np.float32),
                  np.ones((1, 4), bool), [], np.zeros(1, np.int64), np.zeros(0, np.int64),
                  "landmarks", np.array([1, 0]), None))
    cfg = TrainConfig(scale_jitter=0.1, rotate_jitter=15.0, shift_jitter=0.1)
    jitter = draw_jitter(b, cfg, data, torch.Generator().manual_seed(3))
    assert 0 < int(jitter.flip.sum()) < b
    xf, yf, wf, af = apply_jitter(to_input(images, torch.device("cpu")), y, w, jitter, data)
    warped, yh, wh, ah = warp_rows(images, y, w, jitter, data)
    xh = to_input(warped, torch.device("cpu"))
    # OpenCV 5 interpolates in float (seen: max 0.99/255, mean 0.28/255); OpenCV 4
    # rounds positions to 1/32 px and its weights to fixed point (max 6.5/255 on noise,
    # mean 0.83/255); a map off by half a pixel is tens of levels off on noise
    assert float((xh - xf).abs().max()) <= 8 / 255
    assert float((xh - xf).abs().mean()) < 1.5 / 255
    assert torch.equal(yh, yf) and torch.equal(wh, wf)
    assert torch.equal(ah.a, af.a) and torch.equal(ah.flip, af.flip)


def test_a_model_that_learnt_nothing_says_so(tmp_path: Path) -> None:
    """Labels shuffled between the images: nothing in an image predicts its label, so
    the validation error stays near the average label's and every residual is large.
    The run finishes with a warning (what LSP's 64 px run needed: 2 000 images
    flagged at 1.0), and ``gumshoe rank`` repeats it."""
    path = make_dots_project(tmp_path, n=120)
    rng = np.random.default_rng(0)
    with Project.open(path) as project:
        samples = project.samples()
        labels = [project.current_label(s.id) for s in samples]
        for s, k in zip(samples, rng.permutation(len(samples)), strict=True):
            project.add_label(s.id, points=labels[k].points, author="shuffle",
                              replaces=project.current_label(s.id).id)
    rec = Recorder()
    run_id = train(path, TrainConfig(epochs=3, **FAST), rec)
    with Project.open(path) as project:
        run = project.run(run_id)
        assert run.status == "finished"
        assert run.message.startswith("the model has not learnt this dataset"), run.message
        assert project.epochs(run_id)[-1].metrics["skill"] < 0.3
    assert rec.of(StatusEvent)[-1].message == run.message
    out = subprocess.run([sys.executable, "-m", "core", "rank", str(path), "--top", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"warning: run {run_id}: the model has not learnt" in out.stderr


def test_skill_compares_a_model_with_the_average_label() -> None:
    assert skill(0.02, 0.08) == pytest.approx(0.75)
    assert skill(0.1, 0.08) == pytest.approx(-0.25)
    assert skill(None, 0.08) is None and skill(0.02, 0.0) is None
    assert not_learnt_message(0.75, "landmarks") == ""
    assert not_learnt_message(None, "age") == ""
    msg = not_learnt_message(0.1, "age")
    assert "age error is 90 % of the average label's" in msg


def test_the_warning_comes_from_the_last_epoch_not_the_message(tmp_path: Path) -> None:
    """An imported run (``gumshoe import-run``) carries "imported from ..." as its
    message: no warning; a run whose last epoch learnt nothing warns whatever its
    message says; a run still training never warns."""
    path = make_dots_project(tmp_path, n=20)
    with Project.open(path) as project:
        runs = []
        for skill_value, message in ((0.8, "imported from pack (run 1 there, finished)"),
                                     (0.1, "imported from pack (run 2 there, finished)"),
                                     (0.1, "")):
            run = project.create_run("deepgum")
            project.add_epoch(run, 0, train_loss=1.0, val_error=0.1, metrics={"skill": 0.9})
            project.add_epoch(run, 1, train_loss=1.0, val_error=0.1,
                              metrics={"skill": skill_value})
            project.update_run(run, status="finished", message=message)
            runs.append(project.run(run))
        assert run_warning(project, runs[0]) == ""
        assert run_warning(project, runs[1]).startswith("the model has not learnt")
        assert run_warning(project, runs[2]).startswith("the model has not learnt")
        project.update_run(runs[2].id, status="running")
        assert run_warning(project, project.run(runs[2].id)) == ""
