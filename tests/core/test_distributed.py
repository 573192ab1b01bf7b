"""One run on two real processes (the gloo backend on CPU): ``torchrun ... -m core
train`` against a single-process run of the same seed, one writer, a stop on one
rank agreed by all, a failure on rank 0 told to the others; and, under
torch.multiprocessing, the ranks fitting exactly the mixture one process fits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as td
import torch.multiprocessing as mp
from scipy.stats import spearmanr

from core.metrics import auroc
from core.noise import apply_noise
from core.project import Project
from core.training import Recorder, TrainConfig, load_data, train
from core.training.checkpoints import checkpoint_path
from core.training.distributed import Dist, PeerError
from core.training.events import Callbacks
from core.training.loop import Trainer
from tests.core.synth import make_dots_project

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--image-size", "32", "--batch-size", "16", "--seed", "3", "--quiet"]
FAST = dict(image_size=32, batch_size=16, seed=3, score_every=0)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_dots_project(tmp_path_factory.mktemp("dots"), n=160)
    with Project.open(path) as project:
        apply_noise(project, "l-ugo:0.2", seed=1)
    return path


def copy_project(template: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / template.name
    shutil.copy2(template, dest)
    cache = template.with_name(template.name + "-cache")
    if cache.exists():
        shutil.copytree(cache, dest.with_name(dest.name + "-cache"))
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(args: list[str], pids: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node 2`` on tests/core/dist_main.py (the gumshoe CLI,
    each rank noting its pid in ``pids``)."""
    pids.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
           str(REPO / "tests" / "core" / "dist_main.py"), *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "GUMSHOE_TEST_DIR": str(pids),
                "PYTHONPATH": str(REPO), **env}
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=600)


def rank_pids(folder: Path) -> dict[int, int]:
    return {int(d["rank"]): int(d["pid"]) for d in
            (json.loads(p.read_text()) for p in folder.glob("rank-*.json"))}


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


def test_two_processes_train_one_run_like_one_process_and_only_rank_0_writes(
        template: Path, tmp_path: Path) -> None:
    two = copy_project(template, tmp_path / "two")
    one = copy_project(template, tmp_path / "one")
    done = torchrun(["train", str(two), "--epochs", "2", *ARGS], tmp_path / "pids")
    assert done.returncode == 0, done.stderr[-3000:]
    single = train(one, TrainConfig(epochs=2, **FAST))
    pids = rank_pids(tmp_path / "pids")
    assert sorted(pids) == [0, 1]
    # each rank ended at once, without the interpreter's teardown: there gloo's
    # transport thread, still closing its connections, aborted a rank in 6 of 105
    # runs (SIGABRT after a finished run, so torchrun reported it failed)
    assert not list((tmp_path / "pids").glob("teardown-*"))
    assert "run 1 finished: scores in" in done.stdout  # its output flushed first
    with Project.open(two) as project, Project.open(one) as reference:
        (run,) = project.runs()
        assert run.status == "finished" and run.pid == pids[0] != pids[1]
        assert run.device == "cpu x2"
        epochs = project.epochs(run.id)
        assert [e.epoch for e in epochs] == [0, 1]  # each epoch written once
        assert all(e.metrics["processes"] == 2 for e in epochs)
        # every image of the epoch counted once, from both ranks' shares
        assert epochs[-1].metrics["train_images"] == 144
        a, b = project.scores(run.id), reference.scores(single)
        assert a.keys() == b.keys() and len(a) == project.count_samples()
        # the same run within noise: the ranks split each batch of the same seeded
        # order, so the predictions of both runs agree to a fraction of a pixel
        diff = np.concatenate([np.abs(np.subtract(a[s].prediction, b[s].prediction))
                               for s in a])
        assert np.median(diff) < 1.0  # pixels, on 48-pixel images
        # the same ranking: of the samples (the queue's order) and of the landmarks
        ids = sorted(a)
        for key in ("score", "landmark_scores"):
            x = np.concatenate([np.ravel(getattr(a[i], key)) for i in ids])
            y = np.concatenate([np.ravel(getattr(b[i], key)) for i in ids])
            # (0.99/0.98 with the fc head, 0.9996 with the heatmap head; a shuffled
            # gather or a rank scoring another model gives about 0)
            assert spearmanr(x, y).statistic > 0.97, key
        # and the same detection of the injected errors (a learnt model: chance is 0.5)
        auc2, auc1 = landmark_auroc(project, run.id), landmark_auroc(reference, single)
        assert auc1 > 0.8 and auc2 > 0.8 and abs(auc1 - auc2) < 0.01
        assert project.lease_holder() is None  # rank 0 held the lease and let it go
    ck = checkpoint_path(Project.open(two), run.id)
    assert ck.exists() and not list(ck.parent.glob("*.tmp"))


def test_a_stop_on_one_rank_pauses_all_and_a_failure_on_rank_0_ends_the_others(
        template: Path, tmp_path: Path) -> None:
    path = copy_project(template, tmp_path / "p")
    first_ck = path.with_name(path.name + "-cache") / "checkpoints" / "run-1.pt"
    # rank 1 alone is told to stop (SIGTERM, as a scheduler would) once training began
    paused = torchrun(["train", str(path), "--epochs", "6", *ARGS], tmp_path / "pids",
                      GUMSHOE_TEST_STOP_RANK="1", GUMSHOE_TEST_STOP_AFTER=str(first_ck))
    assert paused.returncode != 0  # rank 0 ends with 130: paused
    with Project.open(path) as project:
        run = project.run(1)
        assert run.status == "paused", (run.message, paused.stderr[-3000:])
        done_epochs = [e.epoch for e in project.epochs(1)]
        assert done_epochs == list(range(len(done_epochs))) and len(done_epochs) < 6
    resumed = torchrun(["train", str(path), "--resume", "1", *ARGS[-1:]], tmp_path / "pids2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with Project.open(path) as project:
        assert project.run(1).status == "finished"
        assert [e.epoch for e in project.epochs(1)] == list(range(6))
        assert len(project.scores(1)) == project.count_samples()
    # a run that cannot start: rank 0 says why, once; rank 1 does not wait for it
    again = torchrun(["train", str(path), "--resume", "1"], tmp_path / "pids3")
    assert again.returncode != 0
    assert again.stderr.count("run 1 is finished; nothing to resume") == 1
    assert "rank 1" not in again.stderr.split("ChildFailedError")[0]


def test_a_distributed_run_is_refused_while_another_trainer_holds_the_project(
        template: Path, tmp_path: Path) -> None:
    """Rank 0 takes the project's lease before anything else: with the GUI training
    (here: this process holding the lease), torchrun's run is refused, said once,
    and nothing is written."""
    path = copy_project(template, tmp_path / "p")
    with Project.open(path) as project, project.acquire_lease(None, "gui"):
        done = torchrun(["train", str(path), "--epochs", "1", *ARGS], tmp_path / "pids")
        assert done.returncode != 0
        assert done.stderr.count("another trainer is running (gui pid") == 1, done.stderr[-3000:]
        assert project.runs() == []


# --------------------------------------------------------------------------- in-process ranks


def _rank(rank: int, store: str, project: str, out: str) -> None:
    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    dist = Dist(rank, 2, rank, 2, "gloo")
    try:
        # the primitives: unequal shares gathered in rank order, one rank's flag agreed
        part = np.arange(3 + rank, dtype=np.float64)[:, None] * (rank + 1)
        gathered = dist.gather(part)
        # a rank whose share of a small pass is empty has no array at all
        lone = dist.gather(np.ones((2, 3), np.float32) if rank == 1 else None)
        assert lone is not None and lone.shape == (2, 3) and lone.dtype == np.float32
        stop_any = dist.any(rank == 1)
        try:
            dist.run_on_writer(lambda: (_ for _ in ()).throw(ValueError("broken on rank 0")))
            failure = ""
        except (ValueError, PeerError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        with Project.open(project) as p:
            data = load_data(p, 32)
        cfg = TrainConfig(epochs=2, **FAST)
        t = Trainer(1, cfg, data, Callbacks(), lambda: False, Recorder(),
                    Path(out) / "ck.pt", writer=False, dist=dist)
        t.method.start(t.fit_context(0))  # the first E-step: every rank evaluates its share
        mixture = t.method.mixture
        stats = t.train_epoch()  # one DDP epoch: the ranks end with the same weights
        weights = torch.cat([q.detach().flatten() for q in t.model.parameters()]).numpy()
        t.close()
        np.savez(Path(out) / f"rank-{rank}.npz", gathered=gathered, stop_any=stop_any,
                 failure=failure, train_res=t.method.train_res, r=mixture.r,
                 variance=mixture.var, pi=mixture.pi, weights=weights,
                 loss=stats.loss, images_per_s=stats.images_per_s)
    finally:
        td.destroy_process_group()


def test_every_rank_fits_the_mixture_one_process_fits(template: Path, tmp_path: Path) -> None:
    path = copy_project(template, tmp_path / "p")
    with Project.open(path) as p:
        load_data(p, 32)  # the cache, built before the ranks start
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(path), str(tmp_path)), nprocs=2,
             join=True)
    r0, r1 = (np.load(tmp_path / f"rank-{i}.npz") for i in (0, 1))
    expected = np.concatenate([np.arange(3.0)[:, None], np.arange(4.0)[:, None] * 2])
    for r in (r0, r1):
        np.testing.assert_array_equal(r["gathered"], expected)
        assert bool(r["stop_any"])
    assert str(r0["failure"]) == "ValueError: broken on rank 0"
    assert str(r1["failure"]) == "PeerError: broken on rank 0"
    # the E-step's residuals were gathered: both ranks hold every sample's, and the
    # same mixture, equal to the one a single process fits from the same model
    for key in ("train_res", "r", "variance", "pi"):
        np.testing.assert_array_equal(r0[key], r1[key])
    with Project.open(path) as p:
        data = load_data(p, 32)
    single = Trainer(1, TrainConfig(epochs=2, **FAST), data, Callbacks(), lambda: False,
                     Recorder(), tmp_path / "ck1.pt", writer=False)
    single.method.start(single.fit_context(0))
    np.testing.assert_allclose(r0["train_res"], single.method.train_res, atol=1e-5)
    np.testing.assert_allclose(r0["r"], single.method.mixture.r, atol=1e-4)
    single.close()
    np.testing.assert_array_equal(r0["weights"], r1["weights"])  # DDP kept them in step
    assert float(r0["loss"]) == float(r1["loss"]) and float(r0["images_per_s"]) > 0


def test_signal_handlers_are_restored_after_a_run(template: Path, tmp_path: Path) -> None:
    """The CLI pauses on SIGTERM as on Ctrl-C while it trains, and only then."""
    from core.cli.main import main

    path = copy_project(template, tmp_path / "p")
    before = signal.getsignal(signal.SIGTERM)
    assert main(["train", str(path), "--epochs", "1", *ARGS]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_only_train_runs_under_torchrun(template: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli.main import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["info", str(template)]) == 1
    assert "only `train` runs under torchrun" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")
    assert main(["info", str(template)]) == 1
    assert capsys.readouterr().err == ""  # said once, by rank 0
