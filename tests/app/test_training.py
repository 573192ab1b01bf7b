"""A short real training run in the worker; following a run from the file."""

from __future__ import annotations

import threading

import pytest

from app.settings import settings
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
    # the run's last scores came before its last epoch showed: once it ended, the status
    # bar no longer says the queue will re-rank as training goes on
    qtbot.waitUntil(lambda: "goes on" not in win.statusBar().currentMessage(), timeout=5000)
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


def _fits(button) -> bool:  # noqa: ANN001
    """The button's label is drawn whole (not clipped)."""
    text = button.fontMetrics().horizontalAdvance(button.text())
    return text + (button.iconSize().width() if not button.icon().isNull() else 0) + 16 \
        <= button.width()


def test_pause_resume_and_stop_are_different(demo_window, qtbot):
    """Pause keeps the run resumable (and says so in the file); Stop ends it: the run is
    'stopped', Start then begins a fresh run with other settings."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    win, path = demo_window
    panel = win.training
    win.training_dock.raise_()
    w = panel.start(epochs=40, image_size=32)
    qtbot.waitUntil(lambda: panel.plots.point_counts()["batch_loss"] >= 1, timeout=60_000)
    run_id = panel._started_here
    assert not panel.start_btn.isEnabled() and not win.queue.train_btn.isEnabled()
    QTest.mouseClick(panel.pause_btn, Qt.MouseButton.LeftButton)
    assert w.is_paused and panel.pause_btn.text() == "Resume" and _fits(panel.pause_btn)
    with Project.open(path) as p:
        assert p.run(run_id).status == "paused"
    QTest.mouseClick(panel.pause_btn, Qt.MouseButton.LeftButton)
    assert not w.is_paused and panel.pause_btn.text() == "Pause"
    with Project.open(path) as p:
        assert p.run(run_id).status == "running"
    with qtbot.waitSignal(w.finished, timeout=60_000):
        QTest.mouseClick(panel.stop_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel._run_status == "stopped", timeout=5000)
    with Project.open(path) as p:
        assert p.run(run_id).status == "stopped"
    assert panel.start_btn.text() == "Start" and panel.start_btn.isEnabled()
    assert not panel.pause_btn.isEnabled()  # a stopped run is not resumed
    assert win.queue.train_btn.isEnabled()
    # a fresh run with other settings
    panel.method.setCurrentIndex(panel.method.findData("l2"))
    panel.epochs.setValue(1)
    QTest.mouseClick(panel.start_btn, Qt.MouseButton.LeftButton)
    w2 = panel.worker
    assert w2 is not w
    with qtbot.waitSignal(w2.finished, timeout=120_000):
        pass
    with Project.open(path) as p:
        runs = p.runs()
        assert [r.status for r in runs] == ["stopped", "finished"]
        assert runs[-1].method == "l2" and w2.result == runs[-1].id


def test_a_paused_run_resumes_from_the_panel(demo_window, qtbot):
    """A run left paused (closing the app, Ctrl-C) is resumed with the Resume button,
    and the same run continues; Start would begin a new one instead."""
    win, path = demo_window
    panel = win.training
    w = panel.start(epochs=3, image_size=32)
    qtbot.waitUntil(lambda: panel._last_epoch >= 0, timeout=120_000)
    run_id = panel._started_here
    w.stop_and_join()  # what closing the window does: the run stays resumable
    qtbot.waitUntil(lambda: panel._run_status == "paused", timeout=5000)
    assert panel.pause_btn.isEnabled() and panel.pause_btn.text() == "Resume"
    assert panel.start_btn.isEnabled() and panel.start_btn.text() == "Start"
    panel.toggle_pause()
    w2 = panel.worker
    with qtbot.waitSignal(w2.finished, timeout=120_000):
        pass
    assert w2.result == run_id
    with Project.open(path) as p:
        assert len(p.runs()) == 1 and p.run(run_id).status == "finished"


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
    assert win.editor.state.scores is None

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
    assert win.queue.current_row() == 0 and win.editor.state.scores is not None
    win.queue.select_row(7)
    kept = win.editor.sample.id
    score(top_last=False)
    with qtbot.waitSignal(win.queue.model.reset_done, timeout=5000):
        win.training.poll()
    qtbot.waitUntil(lambda: win.editor.state.scores is not None
                    and win.editor.state.scores.run_id == win.queue.model.run_id, timeout=5000)
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
    assert win.training.pause_btn.text() == "Resume" and win.training.start_btn.text() == "Start"


def test_a_long_failure_is_scrolled_into_view_in_a_short_dock(demo_window, qtbot):
    """At 1280x800 the training card is taller than its dock: a new failure (or the
    not-learnt warning) below the fold was cut after its first line and read by nobody
    (seen on a screenshot). It is scrolled into view, and its tooltip holds all of it."""
    win, path = demo_window
    win.resize(1280, 800)
    win.show()
    win.training_dock.show()
    win.training_dock.raise_()
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QScrollArea

    win.resizeDocks([win.training_dock], [150], Qt.Orientation.Vertical)  # a short dock
    qtbot.waitExposed(win)
    area = win.training.findChild(QScrollArea)  # the settings card's
    qtbot.waitUntil(lambda: area.verticalScrollBar().maximum() > 60, timeout=2000)
    message = ("The model learnt almost nothing (skill 0.15 in its last epoch): its scores "
               "rank hard images, not wrong labels. Train longer, at a larger image size, "
               "or with a pretrained backbone.")
    with Project.open(path) as p:
        run = p.create_run("deepgum", {"config": {"epochs": 3}})
        p.update_run(run, status="failed", message=message)
    win.training.poll()
    label = win.training.failure
    qtbot.waitUntil(lambda: label.isVisible() and area.viewport().rect().contains(
        label.mapTo(area.viewport(), label.rect().bottomLeft())), timeout=2000)
    assert area.verticalScrollBar().value() > 0  # it was below the fold: scrolled to
    assert message in label.toolTip()


def test_a_run_in_another_process_blocks_train_now_and_reranks_on_every_write(
        demo_window, qtbot):
    """`gumshoe train` in a second process: while it trains, this window offers no second
    run (Train now and Start disabled), names who trains and offers to show it; each
    scores write (every 5 epochs) re-ranks the queue, not only the last one. The run
    is long enough (40 epochs of 64 px) that the panel's 1 s poll falls between two
    writes on a fast machine too: at 20 epochs of 32 px a quiet machine finished the
    whole run between two polls and the test failed on unchanged code. The last write
    is checked by its score set, not by the run reading 'finished' when the queue
    lands: the trainer marks the run finished just after its last write, and a poll
    between the two re-ranks (rightly) while the run still reads 'running'."""
    import os
    import subprocess
    import sys

    win, path = demo_window
    queue, panel = win.queue, win.training
    # (queue's run, that run's status, its published score set) per re-rank
    seen: list[tuple[int | None, str, int | None]] = []

    def on_reset() -> None:
        rid = queue.model.run_id
        with Project.open(path) as p:
            r = p.run(rid) if rid is not None else None
            seen.append((rid, r.status if r else "", r.score_set if r else None))

    queue.model.reset_done.connect(on_reset)
    proc = subprocess.Popen([sys.executable, "-m", "core", "train", str(path), "--epochs", "40",
                             "--image-size", "64", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        qtbot.waitUntil(lambda: panel._run_status == "running", timeout=60_000)
        assert not queue.train_btn.isEnabled() and not panel.start_btn.isEnabled()
        assert queue.banner.isVisibleTo(queue) and queue.follow_btn.isVisibleTo(queue)
        who = f"pid {proc.pid} on {os.uname().nodename}"
        assert who in queue.banner_text.text() and who in panel.run_label.text()
        qtbot.waitUntil(lambda: panel._run_status == "finished", timeout=180_000)
    finally:
        _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()[-2000:]
    run_id = panel.run_id
    with Project.open(path) as p:
        final = p.run(run_id).score_set
    assert final is not None
    # the last write re-ranked: a reset saw the run's final score set
    qtbot.waitUntil(lambda: any(s[0] == run_id and s[2] == final for s in seen), timeout=10_000)
    # a mid-run write re-ranked too: an earlier set, while the run still trained
    assert any(s[0] == run_id and s[1] == "running" and s[2] != final for s in seen), seen
    # the trainer lets go of the lease after it marks the run finished: the next poll
    qtbot.waitUntil(lambda: queue.train_btn.isEnabled() and panel.start_btn.isEnabled(),
                    timeout=5000)


def test_the_lease_holder_is_followed_and_no_second_run_starts(demo_window, qtbot):
    """`gumshoe train --resume 1` in another process while a later run (2) exists: the
    panel follows the run the lease holder trains (not the latest), names the holder,
    and offers no second run (before the lease, run 2 'finished' enabled Start and a
    second trainer began). Killed, the holder's run reads 'interrupted' and can be
    resumed here."""
    import os
    import signal
    import subprocess
    import sys

    from core import training

    win, path = demo_window
    queue, panel = win.queue, win.training
    epochs: list[int] = []

    class Cb(training.Callbacks):
        def on_epoch_end(self, ev) -> None:  # noqa: ANN001
            epochs.append(ev.epoch)

    first = training.train(path, training.TrainConfig(epochs=60, image_size=32), Cb(),
                           lambda: len(epochs) >= 1)
    with Project.open(path) as p:
        assert p.run(first).status == "paused"
        later = p.create_run("l2", {"config": {"epochs": 1}})
        p.update_run(later, status="finished")
    panel.poll()
    assert panel.run_id == later and panel.start_btn.isEnabled()
    proc = subprocess.Popen([sys.executable, "-m", "core", "train", str(path), "--resume",
                             str(first), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        qtbot.waitUntil(lambda: panel.holder is not None and panel.holder.run_id == first,
                        timeout=60_000)
        assert panel.run_id == first and panel._run_status == "running"
        assert not panel.start_btn.isEnabled() and not panel.pause_btn.isEnabled()
        assert not queue.train_btn.isEnabled() and queue.follow_btn.isVisibleTo(queue)
        who = f"gumshoe train, pid {proc.pid} on {os.uname().nodename}"
        assert who in panel.run_label.text() and who in queue.banner_text.text()
        assert panel.start(epochs=1, image_size=32) is None  # refused: one run at a time
        with Project.open(path) as p:
            assert [r.id for r in p.runs()] == [first, later]
        proc.send_signal(signal.SIGKILL)  # killed: it says nothing, its lease dies with it
        proc.wait(timeout=30)
        qtbot.waitUntil(lambda: panel.holder is None, timeout=10_000)
        with Project.open(path) as p:
            assert p.run(first).status == "running"  # what the killed process left
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    assert panel.run_id == first and panel._run_status == "interrupted"
    assert panel.pause_btn.isEnabled() and panel.pause_btn.text() == "Resume"
    assert panel.start_btn.isEnabled() and queue.train_btn.isEnabled()
    assert not queue.follow_btn.isVisibleTo(queue)
    w = panel.resume_followed()  # this window takes the lease and continues run 1
    qtbot.waitUntil(lambda: panel.holder is not None and panel.training_here, timeout=60_000)
    assert panel.holder.pid == os.getpid() and panel.holder.run_id == first
    with qtbot.waitSignal(w.finished, timeout=120_000):
        panel.stop()
    assert w.result == first
    with Project.open(path) as p:
        assert p.run(first).status == "stopped" and p.lease_holder() is None


def test_a_finished_run_that_learnt_nothing_shows_its_warning(demo_window, qtbot):
    win, path = demo_window
    with Project.open(path) as p:
        run = p.create_run("deepgum", {"config": {"epochs": 1}})
        p.add_epoch(run, 0, train_loss=1.0, val_error=0.3, metrics={"skill": 0.1})
        p.update_run(run, status="finished", message="imported from pack (run 4 there)")
    win.training.poll()
    assert win.training.failure.isVisibleTo(win.training)
    assert "has not learnt" in win.training.failure.text()
    with Project.open(path) as p:  # an imported run that learnt: its message is no warning
        run = p.create_run("deepgum", {"config": {"epochs": 1}})
        p.add_epoch(run, 0, train_loss=1.0, val_error=0.01, metrics={"skill": 0.8})
        p.update_run(run, status="finished", message="imported from pack (run 5 there)")
    win.training.poll()
    assert win.training.run_id == run
    assert not win.training.failure.isVisibleTo(win.training)


def test_the_card_starts_on_automatic_epochs_and_the_run_shows_its_number(demo_window, qtbot):
    """A fresh card reads Auto; the run it starts fixes its epochs from the project
    (auto_epochs) and the panel counts against that number, not 0."""
    from core.training.config import auto_epochs

    win, path = demo_window
    panel = win.training
    assert panel.epochs.value() == 0 and panel.epochs.text() == "Auto"
    w = panel.start(image_size=32)
    assert w is not None
    qtbot.waitUntil(lambda: panel._last_epoch >= 0, timeout=120_000)
    w.stop_and_join()
    with Project.open(path) as p:
        want = auto_epochs(p.schema.task, p.count_training_samples(), 32)
        assert p.run(panel._started_here).epochs_planned == want
    assert panel.epochs_done() == (panel._last_epoch + 1, want)
    assert settings().epochs == 0  # Auto stays the card's choice for the next run


def test_a_run_with_overrides_leaves_the_cards_own_choice(demo_window, qtbot):
    """The demo's first run trains 10 epochs (an override): the card shows them while
    it runs, then reads Auto again, and the settings never took the 10."""
    win, _ = demo_window
    panel = win.training
    w = panel.start(epochs=1, image_size=32)
    assert w is not None
    assert panel.epochs.value() == 1  # what runs
    with qtbot.waitSignal(w.finished, timeout=120_000):
        pass
    assert panel.epochs.text() == "Auto" and panel.image_size.value() == 64
    assert settings().epochs == 0 and settings().image_size == 64
