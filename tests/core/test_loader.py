"""The data path: batches from the image cache through a DataLoader (in this
thread or in worker processes) are the loop's plan, in order; workers map the
cache themselves; the number of workers changes nothing a run learns; the
augmentation's host draws and their on-device application match the jitter."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.images import ImageCache
from core.project import Project
from core.training import TrainConfig, load_data, train
from core.training.loader import Batches, batch_items
from tests.core.synth import make_dots_project

FAST = dict(image_size=32, batch_size=16, score_every=0, epochs=2)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_dots_project(tmp_path_factory.mktemp("dots"), n=96)
    with Project.open(path) as project:
        load_data(project, 32)
    return path


def copy_project(template: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / template.name
    shutil.copy2(template, dest)
    shutil.copytree(template.with_name(template.name + "-cache"),
                    dest.with_name(dest.name + "-cache"))
    return dest


def test_cached_images_travel_to_a_worker_as_a_path_not_as_rows(template: Path) -> None:
    with Project.open(template) as project:
        ids = [s.id for s in project.samples()]
        images = ImageCache(project.cache_dir, 32).reader(ids)
    blob = pickle.dumps(images)
    assert len(blob) < 4096 < images.nbytes  # the slots and the file's name, not pixels
    again = pickle.loads(blob)
    rows = np.array([5, 0, 17])
    np.testing.assert_array_equal(again[rows], images[rows])


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_reads_the_plan_in_order(template: Path, workers: int) -> None:
    with Project.open(template) as project:
        data = load_data(project, 32)
    batches = Batches(data.images, torch.device("cpu"), workers)
    try:
        for rows in (np.array([9, 3, 40, 7, 1]), np.arange(20)[::-1]):  # two passes, one loader
            items = batch_items(rows, 2)
            got = list(batches(items))
            assert [len(k) for _, k in got] == [len(r) for r, _ in items]
            images = torch.cat([x for x, _ in got]).numpy()
            np.testing.assert_array_equal(images, data.images[rows])
            np.testing.assert_array_equal(torch.cat([k for _, k in got]).numpy(),
                                          np.arange(len(rows)))
    finally:
        batches.close()
    # padded with empty steps (a distributed pass's shorter shares)
    assert [len(r) for r, _ in batch_items(np.arange(3), 2, 4)] == [2, 1, 0, 0]


def test_worker_processes_change_nothing_a_run_learns(template: Path, tmp_path: Path) -> None:
    """The loader draws a seed per pass; it must not come from the run's random
    numbers (dropout), or one worker would train another model than none."""
    runs = []
    for workers in (0, 1):
        path = copy_project(template, tmp_path / f"w{workers}")
        run_id = train(path, TrainConfig(workers=workers, **FAST))
        with Project.open(path) as project:
            runs.append((project.epochs(run_id), project.scores(run_id)))
    (e0, s0), (e1, s1) = runs
    assert [e.train_loss for e in e0] == [e.train_loss for e in e1]
    assert e1[-1].metrics["workers"] == 1 and e0[-1].metrics["workers"] == 0
    for sid in s0:
        np.testing.assert_array_equal(s0[sid].prediction, s1[sid].prediction)
