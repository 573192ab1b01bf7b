"""Automatic epochs and weight decay: the rules, the numbers a new run fixes from
its project (and keeps on resume), and the command line's ``--epochs auto``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.cli.main import build_parser
from core.project import Project, ProjectError
from core.training import Callbacks, EpochEvent, Recorder, TrainConfig, load_data, train
from core.training.config import (
    AUTO_EPOCHS_MAX,
    AUTO_EPOCHS_MIN,
    AUTO_STEPS,
    auto_epochs,
    auto_weight_decay,
)
from core.training.loop import Trainer
from tests.core.synth import make_dots_project


def test_landmarks_get_enough_epochs_for_the_step_budget_within_bounds() -> None:
    # FG-NET in the benchmark: 701 training faces, 21 batches of 32 -> 100 epochs
    assert auto_epochs("landmarks", 701, 32) == 100
    # all 1,002 faces: 31 batches -> 68 epochs (2,108 steps)
    assert auto_epochs("landmarks", 1002, 32) == 68
    assert 68 * (1002 // 32) >= AUTO_STEPS > 67 * (1002 // 32)
    assert auto_epochs("landmarks", 100_000, 32) == AUTO_EPOCHS_MIN  # large sets: 30
    assert auto_epochs("landmarks", 10, 32) == AUTO_EPOCHS_MAX  # tiny sets: capped
    assert auto_epochs("age", 701, 32) == auto_epochs("age", 20, 32) == AUTO_EPOCHS_MIN


def test_a_fixed_number_is_kept_and_negative_is_refused() -> None:
    assert TrainConfig(epochs=7).with_epochs_for("landmarks", 701).epochs == 7
    assert TrainConfig().epochs == 0  # the default is automatic
    assert TrainConfig().with_epochs_for("landmarks", 701).epochs == 100
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=-1)


def test_weight_decay_is_automatic_per_task_unless_given() -> None:
    assert TrainConfig().weight_decay is None
    assert auto_weight_decay("age") == 0.05 and auto_weight_decay("landmarks") == 1e-4
    assert TrainConfig().for_task("age", 4000).weight_decay == 0.05
    fixed = TrainConfig().for_task("landmarks", 701)
    assert (fixed.weight_decay, fixed.epochs) == (1e-4, 100)
    assert TrainConfig(weight_decay=0.0).for_task("age", 4000).weight_decay == 0.0
    assert TrainConfig(weight_decay=0.3).weight_decay_for("landmarks") == 0.3
    with pytest.raises(ValueError, match="weight decay"):
        TrainConfig(weight_decay=-0.1)
    with pytest.raises(ValueError, match="weight decay"):
        TrainConfig(weight_decay=float("nan"))


class _StopAfterFirstEpoch(Callbacks):
    def __init__(self) -> None:
        self.now = False

    def on_epoch_end(self, event: EpochEvent) -> None:
        self.now = True


def test_a_new_run_fixes_its_epochs_from_the_project_and_keeps_them(tmp_path: Path) -> None:
    """180 training ellipses, 20 of them excluded: 160 / 4 = 40 steps an epoch, so
    53 epochs (2,120 steps); the run stores 53, and a resume trains to the stored
    number (changed here to 4 by hand) rather than working it out again."""
    path = make_dots_project(tmp_path, n=200)  # the first 20 in val
    with Project.open(path) as project:
        train_ids = [s.id for s in project.samples(split="train")]
        assert len(train_ids) == 180
        for sid in train_ids[:20]:
            project.set_review(sid, "excluded")
        assert project.count_training_samples() == 160
    stop = _StopAfterFirstEpoch()
    cfg = TrainConfig(image_size=32, batch_size=4, score_every=0)
    run_id = train(path, cfg, stop, lambda: stop.now)
    with Project.open(path) as project:
        run = project.run(run_id)
        assert run.status == "paused"
        assert run.params["config"]["epochs"] == 53 == run.epochs_planned
        assert run.params["config"]["weight_decay"] == 1e-4  # landmarks' automatic decay
        assert "of 53" in run.message
    with sqlite3.connect(path) as conn:  # what the resume must read: the stored number
        conn.execute("UPDATE runs SET params = json_set(params, '$.config.epochs', 4) "
                     "WHERE id = ?", (run_id,))
    train(path, resume=run_id)
    with Project.open(path) as project:
        assert project.run(run_id).status == "finished"
        assert [e.epoch for e in project.epochs(run_id)] == [0, 1, 2, 3]


def test_a_project_without_labels_is_refused_before_a_run_is_written(tmp_path: Path) -> None:
    path = tmp_path / "empty.gumshoe"
    Project.create(path).close()
    with pytest.raises(ProjectError, match="no labels to train on"):
        train(path, TrainConfig())
    with Project.open(path) as project:
        assert project.runs() == []


def test_the_trainer_refuses_epochs_left_automatic(tmp_path: Path) -> None:
    """Only train() fixes automatic epochs (from the project, stored with the run);
    a Trainer given 0 says so instead of choosing a number of its own."""
    path = make_dots_project(tmp_path, n=20)
    with Project.open(path) as project:
        data = load_data(project, 32)
    with pytest.raises(ValueError, match="automatic epochs"):
        Trainer(1, TrainConfig(image_size=32), data, Callbacks(), lambda: False, Recorder(),
                tmp_path / "ck.pt")


def test_the_command_line_takes_auto_or_a_positive_number(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    parser = build_parser(only="train")
    assert parser.parse_args(["train", "p.gumshoe"]).epochs == 0
    assert parser.parse_args(["train", "p.gumshoe", "--epochs", "auto"]).epochs == 0
    assert parser.parse_args(["train", "p.gumshoe", "--epochs", "12"]).epochs == 12
    for bad in ("0", "-3", "many"):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "p.gumshoe", "--epochs", bad])
        assert "--epochs" in capsys.readouterr().err
