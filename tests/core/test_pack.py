"""A run away from the project file: ``gumshoe pack`` makes a folder that trains
without the dataset's images, ``gumshoe info`` follows its run, and ``gumshoe
import-run`` brings runs, epochs and scores back (samples matched by source and
key, idempotent, other projects' packs refused)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.cli.main import main
from core.pack import PACK_META, PROJECT_ID_META, import_runs, pack_info, pack_project
from core.project import LeaseHeldError, Project, ProjectError
from core.training import Callbacks, EpochEvent, TrainConfig, train
from tests.core.synth import make_dots_project

FAST = dict(image_size=32, batch_size=16, score_every=0, epochs=2)


class StopAfterEpoch(Callbacks):
    def __init__(self, last: int = 0) -> None:
        self.last, self.now = last, False

    def on_epoch_end(self, event: EpochEvent) -> None:
        self.now = self.now or event.epoch >= self.last

    def should_stop(self) -> bool:
        return self.now


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    path = make_dots_project(tmp_path / "annotators", n=96)
    train(path, TrainConfig(**FAST))  # a run from before the pack (and the 32 px cache)
    return path


def test_a_pack_trains_without_the_dataset_and_its_runs_come_back(
        project_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    box = tmp_path / "gpu-box" / "pack"
    assert main(["pack", str(project_path), str(box)]) == 0
    packed = box / project_path.name
    assert sorted(p.name for p in (box / f"{project_path.name}-cache").iterdir()) == \
        ["images-32.json", "images-32.u8"]  # the cache at the size it holds, no checkpoints
    with Project.open(project_path) as project, Project.open(packed) as pack:
        info = pack_info(pack)
        assert info is not None and info.last_run == 1 and info.image_sizes == (32,)
        assert info.project_id == project.meta(PROJECT_ID_META) == pack.meta(PROJECT_ID_META)
        assert pack_info(project) is None and pack.count_samples() == project.count_samples()
    # the dataset stays behind: the pack trains on its cache alone
    images = project_path.parent / "images"
    images.rename(project_path.parent / "elsewhere")
    try:
        stop = StopAfterEpoch(0)
        remote = train(packed, TrainConfig(**FAST), stop, stop.should_stop)
        with Project.open(packed) as pack:
            assert pack.run(remote).status == "paused"
            assert pack.epochs(remote)[0].metrics["train_images"] == 86  # none left out
        # followed from the pack while it is under way
        capsys.readouterr()
        assert main(["info", str(box)]) == 0
        out = capsys.readouterr().out
        assert "pack of" in out and f"run {remote}" in out and "paused" in out
        assert "epoch 1/2" in out
        # brought back half-way, then again once finished: the same run, updated
        first = import_runs(project_path, box)
        assert [(a, n) for a, _, n in first.runs] == [(remote, True)] and first.scores == 0
        train(packed, resume=remote)
    finally:
        (project_path.parent / "elsewhere").rename(images)
    with Project.open(project_path) as project:
        sid = project.samples()[0].id
        project.add_label(sid, points=np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]),
                          origin="annotator")  # an edit made while the pack trained
    capsys.readouterr()
    assert main(["import-run", str(project_path), str(box)]) == 0
    out = capsys.readouterr().out
    assert "(updated)" in out and "1 labels were edited here since the pack" in out
    assert main(["import-run", str(project_path), str(box / project_path.name)]) == 0  # again
    with Project.open(project_path) as project, Project.open(packed) as pack:
        runs = project.runs()
        assert len(runs) == 2  # the old run and the imported one: no duplicates
        here = runs[-1]
        assert here.status == "finished" and here.params["origin"]["run"] == remote
        assert here.params["config"] == pack.run(remote).params["config"]
        assert [e.epoch for e in project.epochs(here.id)] == [0, 1]
        assert [e.train_loss for e in project.epochs(here.id)] == \
            [e.train_loss for e in pack.epochs(remote)]
        theirs, mine = pack.scores(remote), project.scores(here.id)
        assert len(mine) == len(theirs) == project.count_samples()
        assert project.scored_run() == here.id  # the queue ranks by it, like any run
        by_key = {s.key: s.id for s in pack.samples()}
        for s in project.samples():
            assert mine[s.id].score == theirs[by_key[s.key]].score
    # an imported run is resumed where it trains, not here
    with pytest.raises(ProjectError, match="was imported from"):
        train(project_path, resume=here.id)


def test_samples_are_matched_by_source_and_key_not_by_id(project_path: Path,
                                                         tmp_path: Path) -> None:
    packed = pack_project(project_path, tmp_path / "pack")
    run_id = train(packed, TrainConfig(**FAST))
    # renumber the pack's samples (ids need not agree: a project rebuilt, a merge)
    conn = sqlite3.connect(packed)
    conn.execute("PRAGMA foreign_keys = OFF")
    for table in ("labels", "review_events", "scores", "score_ranks", "contamination",
                  "conflicts"):
        conn.execute(f"UPDATE {table} SET sample_id = sample_id + 1000")
    conn.execute("UPDATE samples SET id = id + 1000")
    conn.commit()
    conn.close()
    result = import_runs(project_path, tmp_path / "pack")
    assert result.unmatched == 0 and result.edited == 0
    with Project.open(project_path) as project, Project.open(packed) as pack:
        (here,) = [r.id for r in project.runs() if r.params.get("origin")]
        theirs, mine = pack.scores(run_id), project.scores(here)
        assert min(theirs) > 1000 and max(mine) < 1000
        for s in project.samples():
            assert np.array_equal(mine[s.id].prediction, theirs[s.id + 1000].prediction)


def test_packs_of_other_projects_and_other_files_are_refused(project_path: Path,
                                                             tmp_path: Path) -> None:
    pack_project(project_path, tmp_path / "pack")
    other = make_dots_project(tmp_path / "other", n=20)
    with pytest.raises(ProjectError, match="a pack of another project") as err:
        import_runs(other, tmp_path / "pack")
    assert "\n" not in str(err.value)
    with pytest.raises(ProjectError, match="not a pack"):
        import_runs(project_path, other)
    with pytest.raises(ProjectError, match="already exists"):
        pack_project(project_path, tmp_path / "pack")
    with pytest.raises(ProjectError, match="is itself a pack"):
        pack_project(tmp_path / "pack" / project_path.name, tmp_path / "pack2")
    with Project.open(tmp_path / "pack" / project_path.name) as pack:
        assert pack.meta(PACK_META) is not None
    # a pack with no run trained yet imports nothing
    assert import_runs(project_path, tmp_path / "pack").runs == []


def test_a_pack_copies_a_project_in_use(project_path: Path, tmp_path: Path) -> None:
    """The online backup takes a consistent snapshot while another connection holds
    an open write transaction (the GUI editing). Only the first pack writes to the
    project (its identity, once)."""
    pack_project(project_path, tmp_path / "first")
    busy = sqlite3.connect(project_path, isolation_level=None)
    busy.execute("BEGIN IMMEDIATE")
    busy.execute("UPDATE samples SET review_status = 'confirmed' WHERE id = 1")
    try:
        packed = pack_project(project_path, tmp_path / "pack")
    finally:
        busy.execute("ROLLBACK")
        busy.close()
    with Project.open(packed) as pack:
        assert pack.sample(1).review_status == "unreviewed"
        assert pack.count_samples() == 96


def test_a_pack_made_while_a_trainer_holds_the_project_trains_and_import_waits_for_it(
        project_path: Path, tmp_path: Path) -> None:
    """The project's training lease stays with the project: the pack does not inherit
    it (a copy made while the GUI trains must train on its own), and import-run, which
    writes runs into the project, takes it like a trainer (refused, naming the holder,
    while another trainer works)."""
    with Project.open(project_path) as project, project.acquire_lease(None, "gui"):
        packed = pack_project(project_path, tmp_path / "pack")
        remote = train(packed, TrainConfig(**FAST))  # not refused by the GUI's lease
        with pytest.raises(LeaseHeldError, match="another trainer is running") as err:
            import_runs(project_path, tmp_path / "pack")
        assert err.value.holder.owner == "gui" and err.value.holder.pid == os.getpid()
        assert len(project.runs()) == 1  # nothing written
    result = import_runs(project_path, tmp_path / "pack")
    assert [(a, n) for a, _, n in result.runs] == [(remote, True)]
    with Project.open(project_path) as project:
        assert project.lease_holder() is None  # import-run let it go
        assert project.runs()[-1].status == "finished"


def test_a_snapshot_of_a_pack_taken_mid_run_imports_and_the_pack_updates_it_later(
        project_path: Path, tmp_path: Path) -> None:
    """The README's way to bring a run back while it trains: `gumshoe backup` of the
    pack's file there (a consistent copy of a file being written), imported here;
    the finished run imported later from the pack updates the same run."""
    packed = pack_project(project_path, tmp_path / "pack")
    stop = StopAfterEpoch(0)
    remote = train(packed, TrainConfig(**FAST), stop, stop.should_stop)
    snapshot = tmp_path / "snapshot.gumshoe"
    assert main(["backup", str(packed), str(snapshot)]) == 0
    (theirs, here, new), = import_runs(project_path, snapshot).runs
    assert (theirs, new) == (remote, True)
    with Project.open(project_path) as project:
        assert project.run(here).status == "paused" and len(project.epochs(here)) == 1
    train(packed, resume=remote)
    (_, again, new), = import_runs(project_path, tmp_path / "pack").runs
    assert (again, new) == (here, False)
    with Project.open(project_path) as project:
        assert project.run(here).status == "finished" and len(project.epochs(here)) == 2
        assert len(project.scores(here)) == project.count_samples()
