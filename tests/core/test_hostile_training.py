"""Training on hostile ground: a checkpoint crafted or corrupted, and a disk that
fills up during a run (issue 10, items 7 and 14)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from core.project import Project
from core.training import CheckpointError, TrainConfig, train
from tests.core.synth import make_dots_project
from tests.core.test_hostile_cache import run_on_full_disk

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict[str, Any]]:
    """A project with a 2-epoch run and its checkpoint's contents."""
    folder = tmp_path_factory.mktemp("trained")
    path = make_dots_project(folder, n=60, side=32)
    run = train(path, TrainConfig(epochs=2, batch_size=16, seed=0, score_every=0))
    with Project.open(path) as p:
        ck = torch.load(p.run(run).checkpoint, weights_only=True)
    return path, run, ck


def _nan_model(ck: dict) -> None:
    ck["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                   for k, v in ck["model"].items()}


def _bad_moment(ck: dict) -> None:
    for state in ck["optimizer"]["state"].values():
        for k, v in list(state.items()):
            if isinstance(v, torch.Tensor) and v.ndim:
                state[k] = torch.zeros(7)


def _wrong_shape(ck: dict) -> None:
    key = next(iter(ck["model"]))
    ck["model"][key] = torch.zeros(3, 3)


CASES: dict[str, tuple[Callable[[dict], None], str]] = {
    "epoch 1e9": (lambda ck: ck.update(epoch=10**9), "is not between 0 and the run's 2"),
    "epoch float": (lambda ck: ck.update(epoch=1e9), "is not between 0 and the run's 2"),
    "epoch negative": (lambda ck: ck.update(epoch=-3), "is not between 0"),
    "no model": (lambda ck: ck.pop("model"), "incomplete checkpoint (no model)"),
    "weights of another shape": (_wrong_shape, "has shape (3, 3)"),
    "NaN weights": (lambda ck: (ck.update(epoch=0), _nan_model(ck)), "NaN or infinite"),
    "optimizer moments of another shape": (lambda ck: (ck.update(epoch=0), _bad_moment(ck)),
                                           "the parameter's is"),
    "training samples 2-D": (lambda ck: ck.update(train_ids=torch.zeros(2, 2)), "malformed"),
    "another run": (lambda ck: ck.update(run_id=99), "checkpoint of run 99"),
    "not a dict": (None, "not a Gumshoe checkpoint"),  # type: ignore[dict-item]
}


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_checkpoint_is_refused_and_the_run_marked_failed(
        trained: tuple[Path, int, dict], tmp_path: Path, case: str) -> None:
    path, run, good = trained
    project = tmp_path / "p.gumshoe"
    shutil.copy(path, project)
    shutil.copytree(path.with_name(path.name + "-cache"), tmp_path / "p.gumshoe-cache")
    with Project.open(project) as p:
        ck_path = p.cache_dir / "checkpoints" / f"run-{run}.pt"
        p.update_run(run, status="paused", checkpoint=str(ck_path))
    mutate, message = CASES[case]
    if mutate is None:
        torch.save([1, 2, 3], ck_path)
    else:
        ck = copy.deepcopy(good)
        mutate(ck)
        torch.save(ck, ck_path)
    with pytest.raises(CheckpointError, match=re.escape(message)) as exc:
        train(project, resume=run)
    assert "\n" not in str(exc.value) and str(ck_path) in str(exc.value)
    with Project.open(project) as p:
        info = p.run(run)
        assert info.status == "failed" and message.split(" (")[0] in info.message
        assert not p.scores(run) or info.status != "finished"


def test_optimizer_mismatch_is_one_line_from_the_cli(trained: tuple[Path, int, dict],
                                                     tmp_path: Path) -> None:
    """It used to pass every check and fail at the first step as a raw RuntimeError
    traceback."""
    path, run, good = trained
    project = tmp_path / "p.gumshoe"
    shutil.copy(path, project)
    shutil.copytree(path.with_name(path.name + "-cache"), tmp_path / "p.gumshoe-cache")
    ck = copy.deepcopy(good)
    ck["epoch"] = 0
    _bad_moment(ck)
    with Project.open(project) as p:
        ck_path = p.cache_dir / "checkpoints" / f"run-{run}.pt"
        p.update_run(run, status="paused", checkpoint=str(ck_path))
    torch.save(ck, ck_path)
    proc = subprocess.run([sys.executable, "-m", "core", "train", str(project), "--resume",
                           str(run), "--quiet"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("gumshoe: error: ") and "optimizer" in proc.stderr


def test_disk_full_during_training_fails_the_run_resumably(trained: tuple[Path, int, dict],
                                                           tmp_path: Path) -> None:
    """The project on a tmpfs with room for one checkpoint but not for the temporary
    file of the next: one 'disk full' line, no .pt.tmp left, the run 'failed' and,
    with room again, resumed to the end."""
    path, run, good = trained
    built = tmp_path / "built"
    built.mkdir()
    project = built / "p.gumshoe"
    shutil.copy(path, project)
    cache = built / "p.gumshoe-cache"
    shutil.copytree(path.with_name(path.name + "-cache"), cache)
    shutil.rmtree(cache / "checkpoints")
    with Project.open(project) as p:
        p.conn.execute("UPDATE runs SET score_set = NULL")
        for table in ("scores", "score_sets", "epochs", "runs"):
            p.conn.execute(f"DELETE FROM {table}")
    used = sum(f.stat().st_size for f in built.rglob("*") if f.is_file())
    ck_size = len(torch.save(good, buf := __import__("io").BytesIO()) or buf.getvalue())
    kilobytes = (used + ck_size * 3 // 2 + (256 << 10)) // 1024
    disk = tmp_path / "disk"
    disk.mkdir()
    command = ["sh", "-c", f'cp -a "{built}"/. "{disk}"/ && exec "$@"', "sh",
               sys.executable, "-m", "core", "train", str(disk / "p.gumshoe"), "--epochs", "3",
               "--batch-size", "16", "--quiet"]
    proc = run_on_full_disk(disk, kilobytes, command, timeout=600)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gumshoe: error: disk full: "), lines[-5:]
    assert lines[0].endswith(".pt") or lines[0].endswith("p.gumshoe"), lines
    after = tmp_path / "disk.after"
    assert not [p.name for p in after.rglob("*") if p.name.endswith(".tmp")]
    with Project.open(after / "p.gumshoe") as p:
        (info,) = p.runs()
        assert info.status == "failed" and info.message.startswith("disk full: ")
        assert len(p.epochs(info.id)) >= 1
    # the checkpoint names the folder it was written in: point it at the copy
    ck_file = after / "p.gumshoe-cache" / "checkpoints" / f"run-{info.id}.pt"
    assert ck_file.exists()
    with Project.open(after / "p.gumshoe") as p:
        p.update_run(info.id, checkpoint=str(ck_file))
    train(after / "p.gumshoe", resume=info.id)
    with Project.open(after / "p.gumshoe") as p:
        assert p.run(info.id).status == "finished" and p.scores(info.id)


def test_training_leaves_out_changed_and_missing_images_and_says_so(tmp_path: Path) -> None:
    path = make_dots_project(tmp_path, n=40, side=32)
    images = sorted((tmp_path / "images").iterdir())
    images[3].write_bytes(images[4].read_bytes())  # another picture under the old name
    images[5].unlink()
    proc = subprocess.run([sys.executable, "-m", "core", "train", str(path), "--epochs", "1",
                           "--batch-size", "8", "--quiet"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning: left out 2 images that cannot be used (1 changed, 1 missing)" in proc.stderr
    with Project.open(path) as p:
        run = p.runs()[-1].id
        by_path = {s.path: s.id for s in p.samples()}
        scored = set(p.scores(run))
    assert by_path[f"images/{images[3].name}"] not in scored
    assert by_path[f"images/{images[5].name}"] not in scored
    assert len(scored) == 38
