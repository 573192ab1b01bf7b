"""A short real training run in the worker; following a run from the file."""

from __future__ import annotations

import threading

import pytest

from core.project import Project, ScoreRow


@pytest.fixture
def demo_window(qtbot, tmp_path):
    from core.demo import make_demo
    from tests.app.conftest import open_window

    path = make_demo(tmp_path / "demo.gumshoe", n=40)
    win = open_window(qtbot, path)
    yield win, path
    win.close()


def test_short_run_feeds_the_plots_and_reranks_the_queue(demo_window, qtbot):
    win, path = demo_window
    assert win.queue.model.run_id is None  # nothing ranked before training
    assert win.queue.banner.isVisible()  # ... and the queue says so, with a Train button
    w = win.training.start(epochs=2, image_size=32)
    assert w is not None
    with qtbot.waitSignal(w.finished, timeout=180_000):
        pass
    assert w.error is None, w.error
    qtbot.waitUntil(lambda: win.queue.model.run_id == w.result and win.queue.model.loaded,
                    timeout=10_000)
    assert not win.queue.banner.isVisible()
    pts = win.training.plots.point_counts()
    assert pts["loss"] == 2 and pts["val"] == 2 and pts["speed"] == 2, pts
    assert pts["batch_loss"] >= 1 and pts["inlier"] >= 1 and pts["hist"] == 20, pts
    m = win.queue.model
    scores = [m.row(r).score for r in range(min(m.rowCount(), 40))]
    assert None not in scores and scores == sorted(scores, reverse=True)
    assert win.training._run_status == "finished"
    with Project.open(path) as p:
        assert p.run(w.result).status == "finished"
        assert len(p.epochs(w.result)) == 2


def test_close_during_training_stops_and_joins(demo_window, qtbot):
    win, path = demo_window
    w = win.training.start(epochs=50, image_size=32)
    qtbot.waitUntil(lambda: win.training._started_here is not None, timeout=60_000)
    win.close()  # confirm_close is off: the question is answered yes
    assert not w.isRunning()
    with Project.open(path) as p:
        assert p.runs()[-1].status == "paused"  # resumable


def test_panel_follows_a_run_written_by_another_process(demo_window, qtbot):
    """What `gumshoe train` elsewhere writes, the panel shows, and new scores re-rank."""
    win, path = demo_window
    panel = win.training

    def headless() -> None:  # another connection, another thread: like another process
        with Project.open(path) as p:
            run = p.create_run("deepgum", {"config": {"epochs": 3}}, device="cuda:0")
            for e in range(2):
                p.add_epoch(run, e, train_loss=1.0 / (e + 1), val_error=0.1, inlier_fraction=0.8,
                            images_per_s=500.0, seconds=2.0,
                            metrics={"histogram": [1] * 19 + [30]})
            ids = [s.id for s in p.samples()]
            p.write_scores(run, [ScoreRow(i, float(-i)) for i in ids])

    t = threading.Thread(target=headless)
    t.start()
    t.join()
    with qtbot.waitSignal(win.queue.model.reset_done, timeout=5000):
        panel.poll()
    assert panel.plots.point_counts()["loss"] == 2
    assert panel.plots.point_counts()["hist"] == 20
    assert "epoch 2/3" in panel.progress.format()
    # the latest numbers sit beside the plots' titles (the side card stays short)
    assert panel.plots.value("loss") == "0.5" and panel.plots.value("inlier") == "80.0%"
    assert panel.plots.value("speed") == "500"
    assert win.queue.model.row(0).score == -1.0


def test_pause_stop_and_resume(demo_window, qtbot):
    win, path = demo_window
    panel = win.training
    w = panel.start(epochs=40, image_size=32)
    qtbot.waitUntil(lambda: panel.plots.point_counts()["batch_loss"] >= 1, timeout=60_000)
    run_id = panel._started_here
    panel.toggle_pause()
    assert w.is_paused and panel.pause_btn.text() == "Resume"
    with Project.open(path) as p:
        assert p.run(run_id).status == "paused"
    panel.toggle_pause()
    with Project.open(path) as p:
        assert p.run(run_id).status == "running"
    with qtbot.waitSignal(w.finished, timeout=60_000):
        panel.stop()  # Stop ends the run for good: not resumable
    panel.poll()
    assert panel._run_status == "stopped"
    assert panel.start_btn.text() == "Start" and panel.start_btn.isEnabled()
    # a new run, interrupted the way closing the window does: paused, resumable
    w2 = panel.start(epochs=40, image_size=32)
    qtbot.waitUntil(lambda: panel._started_here not in (None, run_id), timeout=60_000)
    run2 = panel._started_here
    qtbot.waitUntil(lambda: panel._last_epoch >= 0, timeout=60_000)
    w2.stop_and_join()
    panel.poll()
    assert panel._run_status == "paused"
    assert panel.start_btn.text() == "Resume" and panel.start_btn.isEnabled()
    done_before = panel._last_epoch
    panel.start_or_resume()
    w3 = panel.worker
    assert w3 is not w2
    qtbot.waitUntil(lambda: panel._last_epoch > done_before, timeout=60_000)
    with qtbot.waitSignal(w3.finished, timeout=60_000):
        panel.stop()
    assert w3.result == run2  # the same run continued
    with Project.open(path) as p:
        assert [r.status for r in p.runs()] == ["stopped", "stopped"]


def test_panel_follows_gumshoe_train_in_another_process(demo_window, qtbot):
    """A real `gumshoe train` in a separate process: the open window shows its epochs
    live and re-ranks the queue when its scores land."""
    import subprocess
    import sys

    win, path = demo_window
    proc = subprocess.Popen([sys.executable, "-m", "core", "train", str(path), "--epochs", "2",
                             "--image-size", "32", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        qtbot.waitUntil(lambda: win.training.run_id is not None, timeout=60_000)
        qtbot.waitUntil(lambda: win.training._run_status == "finished"
                        and win.queue.model.run_id == win.training.run_id, timeout=120_000)
    finally:
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert win.training.plots.point_counts()["loss"] == 2
    assert f"pid {proc.pid}" in win.training.run_label.text()
    m = win.queue.model
    scores = [m.row(r).score for r in range(m.rowCount())]
    assert None not in scores and scores == sorted(scores, reverse=True)


def test_first_ranking_shows_the_top_later_ones_keep_the_sample(qtbot, tmp_path):
    """The queue's first ranking (e.g. the demo's first run) selects its top; a later
    re-rank keeps the sample being edited and shows its new scores."""
    from tests.app.conftest import open_window
    from tests.app.fakes import make_project

    path = make_project(tmp_path / "p.gumshoe", n=30, scored=False)
    win = open_window(qtbot, path)
    win.queue.select_row(5)
    browsing = win.editor.sample.id
    assert win.editor.score is None

    def score(top_last: bool) -> int:
        with Project.open(path) as p:
            run = p.create_run("deepgum", {"config": {"epochs": 1}})
            ids = [s.id for s in p.samples()]
            p.write_scores(run, [ScoreRow(i, float(i if top_last else -i)) for i in ids])
            p.update_run(run, status="finished")
            return max(ids) if top_last else min(ids)

    top = score(top_last=True)
    assert top != browsing
    with qtbot.waitSignal(win.queue.model.reset_done, timeout=5000):
        win.training.poll()
    qtbot.waitUntil(lambda: win.editor.sample.id == top, timeout=5000)
    assert win.queue.current_row() == 0 and win.editor.score is not None
    win.queue.select_row(7)
    kept = win.editor.sample.id
    score(top_last=False)
    with qtbot.waitSignal(win.queue.model.reset_done, timeout=5000):
        win.training.poll()
    qtbot.waitUntil(lambda: win.editor.score is not None
                    and win.editor.score.run_id == win.queue.model.run_id, timeout=5000)
    assert win.editor.sample.id == kept
    win.close()


def test_a_failed_run_shows_its_message(demo_window, qtbot):
    win, path = demo_window
    with Project.open(path) as p:
        run = p.create_run("deepgum", {"config": {"epochs": 3}})
        p.update_run(run, status="failed", message="CUDA <out of memory>")
    win.training.poll()
    assert win.training.failure.isVisibleTo(win.training)
    assert "CUDA &lt;out of memory&gt;" in win.training.failure.text()
    assert win.training.start_btn.text() == "Resume"
