"""One trainer per project: a second trainer (a real process, or the CLI) is refused
with a message naming the holder; a holder that died is taken over; Stop and Pause
leave different statuses and a stopped run cannot be resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.project import LabelSchema, LeaseHeldError, Project, ProjectError
from core.training import TrainConfig, train
from tests.core.synth import make_dots_project

REPO = Path(__file__).resolve().parents[2]
TINY = TrainConfig(epochs=2, image_size=32, batch_size=8, score_every=0, threads=1)


def hold_lease(path: Path, owner: str = "cli") -> subprocess.Popen:
    """A real process that takes the project's lease and keeps it until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from core.project import Project
        p = Project.open({str(path)!r})
        lease = p.acquire_lease(None, {owner!r})
        print("held", flush=True)
        while True:
            time.sleep(0.2)
            lease.heartbeat()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    return make_dots_project(tmp_path, n=24, side=32)


def test_second_trainer_is_refused_naming_the_holder(project_path: Path) -> None:
    holder = hold_lease(project_path)
    try:
        with pytest.raises(LeaseHeldError, match=f"pid {holder.pid} on ") as err:
            train(project_path, TINY)
        assert err.value.holder.pid == holder.pid and err.value.holder.owner == "cli"
        with Project.open(project_path) as p:
            assert p.runs() == []  # refused before any work: no run was created
            assert p.lease_holder().pid == holder.pid
        # the CLI says so in one line and exits non-zero
        out = subprocess.run([sys.executable, "-m", "core", "train", str(project_path),
                              "--epochs", "1", "--image-size", "32"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 1
        assert "another trainer is running" in out.stderr and f"pid {holder.pid}" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holder_is_taken_over(project_path: Path) -> None:
    holder = hold_lease(project_path, owner="gui")
    os.kill(holder.pid, signal.SIGKILL)  # dies holding it: no release, no checkpoint
    holder.wait()
    with Project.open(project_path) as p:
        assert p.lease_holder() is None  # its pid is gone on this host
    run_id = train(project_path, TINY)
    with Project.open(project_path) as p:
        assert p.run(run_id).status == "finished" and p.lease_holder() is None


def test_a_training_cli_blocks_a_second_one(project_path: Path) -> None:
    """A real `gumshoe train` runs; a second one (new run, or resuming the same run)
    is refused while it trains; Ctrl-C pauses the first and frees the project."""
    cmd = [sys.executable, "-m", "core", "train", str(project_path), "--image-size", "32",
           "--quiet"]
    first = subprocess.Popen([*cmd, "--epochs", "500"], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        holder = None
        while holder is None or holder.run_id is None:
            assert time.monotonic() < deadline and first.poll() is None, first.stderr.read()
            time.sleep(0.1)
            with Project.open(project_path) as p:
                holder = p.lease_holder()
        assert holder.pid == first.pid and holder.owner == "cli"
        for extra in (["--epochs", "1"], ["--resume", str(holder.run_id)]):
            out = subprocess.run([*cmd, *extra], cwd=REPO, capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 1, out.stderr
            assert "another trainer is running" in out.stderr
            assert f"pid {first.pid}" in out.stderr and "Traceback" not in out.stderr
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
        assert first.returncode == 130
        with Project.open(project_path) as p:
            assert [r.status for r in p.runs()] == ["paused"] and p.lease_holder() is None
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_stop_and_pause_are_different(project_path: Path) -> None:
    class After:
        def __init__(self, answer: str | bool) -> None:
            self.calls, self.answer = 0, answer

        def __call__(self) -> str | bool:
            self.calls += 1
            return self.answer if self.calls > 3 else False

    paused = train(project_path, TINY, should_stop=After(True))
    stopped = train(project_path, TINY, should_stop=After("stop"))
    with Project.open(project_path) as p:
        assert p.run(paused).status == "paused" and p.run(stopped).status == "stopped"
    with pytest.raises(ProjectError, match=f"run {stopped} is stopped"):
        train(project_path, resume=stopped)
    assert train(project_path, resume=paused) == paused
    with Project.open(project_path) as p:
        assert p.run(paused).status == "finished"
    with pytest.raises(ProjectError, match="is finished"):
        train(project_path, resume=paused)


def test_heartbeat_and_release(tmp_path: Path) -> None:
    path = make_dots_project(tmp_path, n=4, side=32)
    with Project.open(path) as p:
        lease = p.acquire_lease(None, "bench")
        first = p.lease_holder()
        assert first.owner == "bench" and first.run_id is None
        time.sleep(0.01)
        lease.heartbeat(force=True)
        assert p.lease_holder().heartbeat > first.heartbeat
        with pytest.raises(LeaseHeldError):  # one trainer per project, even in one process
            p.acquire_lease(None, "gui")
        lease.release()
        assert p.lease_holder() is None
        with p.acquire_lease(None, "gui") as again:
            assert p.lease_holder().owner == "gui"
        assert again.released and p.lease_holder() is None


def test_a_backup_copy_holds_no_lease(tmp_path: Path) -> None:
    """A trainer here holds no lease on a copy (e.g. one taken to a GPU box, where the
    holder's pid could not be checked and a trainer would be refused)."""
    path = tmp_path / "p.gumshoe"
    with Project.create(path, LabelSchema("landmarks", "tri", ("a", "b", "c"))) as p, \
            p.acquire_lease(None, "cli"):
        copy = p.backup(tmp_path / "copy.gumshoe")
        assert p.lease_holder() is not None
        with Project.open(copy) as c:  # while the original's holder lives
            assert c.lease_holder() is None
            assert c.conn.execute("SELECT count(*) FROM lease").fetchone()[0] == 0
