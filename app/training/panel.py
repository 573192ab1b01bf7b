"""The training dock: settings, start/pause/stop/resume, live plots.

The panel follows a run *from the project file*: every second it asks for the
runs and for the epochs after the last one it has (a few rows), so a run
started by ``gumshoe train`` in another process shows live too. A run started
here runs in a :class:`app.workers.Worker`; its throttled events add detail the
file does not hold (per-batch loss, per-EM-step inlier fraction, the
responsibility histogram).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QWidget,
)

from app import theme
from app.training import runner
from app.training.card import RunCard, clock_time, holder_phrase, who_trained
from app.training.plots import TrainingPlots
from app.widgets import scrolling
from app.workers import Worker
from core.project import Epoch, LeaseInfo, Run
from core.skill import not_learnt_message

ACTIVE = ("running",)
# a run ended by Stop is 'stopped' (not resumable); one paused (Pause, closing the app,
# Ctrl-C) or cut short (failed, its process killed) continues from its checkpoint
RESUMABLE = ("paused", "failed", "interrupted")


class TrainingPanel(QWidget):
    run_state_changed = Signal(str)  # one line for the status bar
    busy_changed = Signal(bool, str)  # someone trains this project; who (one phrase)
    scores_written = Signal(int)  # run id whose scores changed
    worker_started = Signal()
    worker_finished = Signal()

    POLL_MS = 1000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Any = None
        self.worker: Worker | None = None
        self.run_id: int | None = None  # the run the plots show
        self._run_status = ""
        self._last_epoch = -1
        self._last_skill: float | None = None  # of the followed run's last epoch
        self._em_step = 0
        self._seen_updated: str | None = None
        self._started_here: int | None = None
        self._epoch_secs: list[float] = []
        # what a stop request means to this window's trainer: "pause" (closing the app,
        # another project) or "stop" (the Stop button: the run ends, not resumable)
        self._stop_mode: dict[str, str] = {"stop": "pause"}
        self._scores_seen: tuple[int | None, int | None] = (None, None)
        self.holder: LeaseInfo | None = None  # who holds the project's training lease
        self._refused = ""  # why this window's last Start was refused (another trainer)
        self._card_after: dict[str, Any] | None = None  # the card's own settings, after overrides
        self._held_seen: tuple[int, int] | None = None  # (run a holder trained, latest run)
        self._runs_stamp: tuple = ()
        self._busy: tuple[bool, str] = (False, "")
        self._setup_ui()
        self.timer = QTimer(self)
        self.timer.setInterval(self.POLL_MS)
        self.timer.timeout.connect(self.poll)

    # ------------------------------------------------------------------ ui
    def _setup_ui(self) -> None:
        root = QHBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        root.setSpacing(10)
        self.card = card = RunCard()
        # the card's widgets under the panel's names (tests and the window use them)
        self.method, self.epochs = card.method, card.epochs
        self.image_size, self.device = card.image_size, card.device
        self.start_btn, self.pause_btn, self.stop_btn = card.start_btn, card.pause_btn, card.stop_btn
        self.progress, self.run_label, self.failure = card.progress, card.run_label, card.failure
        self.start_btn.clicked.connect(lambda: self.start())
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.stop_btn.clicked.connect(self.stop)
        self._side_area = scrolling(card)
        root.addWidget(self._side_area)

        self.plots = TrainingPlots()
        root.addWidget(self.plots, 1)
        self._update_buttons()

    # ------------------------------------------------------------------ project
    def set_project(self, project: Any) -> None:
        self.project = project
        self.run_id = None
        self._last_epoch = -1
        self._last_skill = None
        self._seen_updated = None
        self._scores_seen = (None, None)
        self._runs_stamp: tuple = ()
        self._started_here = None
        self.holder = None
        self._refused = ""
        self._held_seen = None
        self.plots.clear()
        if project is None:
            self.timer.stop()
            return
        self._scores_seen = self._published()
        self.poll()
        self.timer.start()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop polling; stop and join the training worker (if any)."""
        self.timer.stop()
        if self.worker is not None:
            self.worker.stop_and_join(timeout_s)
            # its last events may still be queued: they belong to the old project
            self.worker = None
            self._started_here = None
            self.worker_finished.emit()

    @property
    def training_here(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    # ------------------------------------------------------------------ following the file
    def _published(self) -> tuple[int | None, int | None]:
        """The run the queue ranks by and its published score set: a new set is a new
        scores write (each write publishes a set of its own)."""
        sr = self.project.scored_run()
        return sr, None if sr is None else self.project.run(sr).score_set

    def poll(self) -> None:
        """Cheap: the lease row, the runs (a few rows) and the epochs after the last one
        shown. The panel follows the run the lease holder trains (this window's, or
        `gumshoe train` elsewhere), else the latest run."""
        if self.project is None:
            return
        self.holder = self.project.lease_holder()
        runs = self.project.runs()
        if not runs:
            self._show_run(None)
            return
        held = None if self.holder is None else self.holder.run_id
        if any(r.id == held for r in runs):
            target = held
            self._held_seen = (held, runs[-1].id)
        elif self._held_seen is not None and self._held_seen[1] == runs[-1].id \
                and any(r.id == self._held_seen[0] for r in runs):
            # the run it trained ended (or its process died): stay on it, so its end,
            # or Resume for a run cut short, shows, until another run begins
            target = self._held_seen[0]
        else:
            target, self._held_seen = runs[-1].id, None
        if self.run_id != target:
            self._follow(target)
        run = next(r for r in runs if r.id == self.run_id)
        if run.updated_at != self._seen_updated:
            self._seen_updated = run.updated_at
            rows = self.project.epochs(self.run_id, after=self._last_epoch)
            for row in rows:
                self._add_epoch(row)
            if rows:
                self.plots.flush()
        self._show_run(run)
        # every scores write of any run (this window's, or `gumshoe train` elsewhere)
        # re-ranks; a write touches its run's row, so look only when a run changed
        stamp = tuple((r.id, r.updated_at, r.score_set) for r in runs)
        if stamp != self._runs_stamp:
            self._runs_stamp = stamp
            seen = self._published()
            if seen != self._scores_seen:
                self._scores_seen = seen
                if seen[0] is not None:
                    self.scores_written.emit(seen[0])

    def _follow(self, run_id: int) -> None:
        self.run_id = run_id
        self._last_epoch = -1
        self._last_skill = None
        self._em_step = 0
        self._epoch_secs = []
        self._seen_updated = None
        self.plots.clear()

    def _add_epoch(self, row: Epoch) -> None:
        e = int(row.epoch)
        x = e + 1
        self._last_epoch = e
        for s in self.plots.series.values():
            if s is not self.plots.inlier and s is not self.plots.batch_loss:
                s.replace_from(x)
        self.plots.loss.append(x, row.train_loss)
        self.plots.val.append(x, row.val_error)
        self.plots.speed.append(x, row.images_per_s)
        metrics = row.metrics or {}
        value = metrics.get("skill")
        self._last_skill = float(value) if isinstance(value, (int, float)) else None
        if self._started_here != self.run_id:  # from the file only: one EM point per epoch
            if row.inlier_fraction is not None:
                self._em_step += 1
                self.plots.inlier.append(self._em_step, row.inlier_fraction)
            hist = metrics.get("histogram")
            if isinstance(hist, list) and hist:
                n = len(hist)
                self.plots.set_histogram(np.linspace(0, 1, n + 1), np.asarray(hist))
        if row.seconds is not None:
            self._epoch_secs.append(float(row.seconds))

    def _show_run(self, run: Run | None) -> None:
        if run is None:
            self._run_status = ""
            self._set_busy(self.training_here or self.holder is not None, self._holder_phrase())
            self.run_label.setText("No run yet. Pick a method and press Start, or run "
                                   "`gumshoe train` on this project elsewhere: it shows here.")
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("no run")
            self.failure.hide()
            self._update_buttons()
            self.run_state_changed.emit("no run")
            return
        status = run.status
        held = self.holder is not None and self.holder.run_id in (run.id, None)
        if status == "running" and not held and not self.training_here:
            status = "interrupted"  # nobody holds its lease: its trainer ended unsaid (killed)
        self._run_status = status
        total = run.epochs_planned
        done = self._last_epoch + 1
        where = self._holder_phrase(since=False) if held else self._who(run)
        self.run_label.setText(f"Run {run.id} · {run.method} · {status}"
                               f"{' · ' + run.device if run.device else ''}\n"
                               f"{'' if held or self.training_here else 'started '}by {where}")
        self.run_label.setToolTip(f"lease: {self.holder.describe()}" if self.holder else
                                  "nobody trains this project now")
        busy = self.training_here or self.holder is not None
        self._set_busy(busy, f"run {run.id} ({run.method}) by {self._holder_phrase()}"
                       if held else f"run {run.id} ({run.method}) by this window"
                       if self.training_here else self._holder_phrase())
        left = None
        if status in ACTIVE and total and done:
            per_epoch = self._mean_epoch_seconds()
            if per_epoch:
                left = per_epoch * (total - done)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))
        self.progress.setFormat(f"epoch {done}/{total or '?'}"
                                + (f" · {clock_time(left)} left" if left is not None else ""))
        last = {k: (s.y[-1] if s.y else None) for k, s in self.plots.series.items()}
        self.plots.set_value("loss", "" if last["loss"] is None else f"{last['loss']:.3g}")
        self.plots.set_value("val", "" if last["val"] is None else
                            f"{last['val']:.2g}" if abs(last["val"]) < 1 else f"{last['val']:.3g}")
        self.plots.set_value("inlier", "" if last["inlier"] is None else f"{last['inlier']:.1%}")
        self.plots.set_value("speed", "" if last["speed"] is None else f"{last['speed']:.0f}")
        names = {"loss": "loss", "val": "val error", "inlier": "inliers", "speed": "images/s"}
        self.progress.setToolTip("\n".join(f"{label}: {self.plots.value(k)}"
                                           for k, label in names.items() if self.plots.value(k)))
        # a failed run's error, or a finished run's warning: its model learnt nothing
        # (from its last epoch: an imported run's message says where it came from)
        task = self.project.schema.task if self.project.schema else "landmarks"
        failure = self._refused or (run.message if status == "failed" else
                                    not_learnt_message(self._last_skill, task)
                                    if status == "finished" else "")
        if failure:
            text = f"<span style='color:{theme.colors().outlier}'>{html.escape(str(failure))}</span>"
            if text != self.failure.text() or self.failure.isHidden():
                self.failure.setText(text)
                self.failure.setToolTip(f"<p>{html.escape(str(failure))}</p>")  # wraps; no markup
                self.failure.show()
                # a short dock shows the card's top: scroll the new message into view
                # (once laid out), or it sits below the fold where nobody reads it
                QTimer.singleShot(0, self, self._scroll_to_failure)
        else:
            self.failure.hide()
        self._update_buttons()
        self.run_state_changed.emit(f"run {run.id} {run.method}: {status}, "
                                    f"epoch {done}/{total or '?'}")

    def _scroll_to_failure(self) -> None:
        self._side_area.ensureWidgetVisible(self.failure)

    def _holder_phrase(self, since: bool = True) -> str:
        return holder_phrase(self.holder, self.training_here, since)

    def _who(self, run: Run) -> str:
        here = self._started_here == run.id or (self.training_here and self.run_id == run.id)
        return who_trained(run, here)

    def _set_busy(self, busy: bool, who: str) -> None:
        if (busy, who) != self._busy:
            self._busy = (busy, who)
            self.busy_changed.emit(busy, who if busy else "")

    @property
    def is_running(self) -> bool:
        """The followed run is training (here or in another process)."""
        return self.training_here or self._run_status in ACTIVE

    def epochs_done(self) -> tuple[int, int | str]:
        """(epochs done, total or '?') of the followed run."""
        total: int | str = "?"
        if self.project is not None and self.run_id is not None:
            total = self.project.run(self.run_id).epochs_planned or "?"
        return self._last_epoch + 1, total

    def _mean_epoch_seconds(self) -> float | None:
        secs = self._epoch_secs[-3:]
        return float(np.mean(secs)) if secs else None

    @property
    def held_elsewhere(self) -> bool:
        """Another trainer (a process, another window) holds the project's lease."""
        return self.holder is not None and not self.training_here

    @property
    def can_resume(self) -> bool:
        """The followed run is paused or cut short and nobody trains the project:
        Resume continues it from its checkpoint."""
        return (not self.training_here and not self.held_elsewhere and self.run_id is not None
                and self._run_status in RESUMABLE)

    def _update_buttons(self) -> None:
        here = self.training_here
        has = self.project is not None
        paused_here = here and self.worker.is_paused
        # Start: always a fresh run (other settings), unless a run is training
        self.start_btn.setEnabled(has and not here and not self.held_elsewhere)
        self.start_btn.setToolTip(f"{self._holder_phrase()} trains this project: one run at a "
                                  "time" if self.held_elsewhere else
                                  "Train a new run with these settings")
        # Pause / Resume: this window's run, or resume the followed paused run
        resume = paused_here or self.can_resume
        self.pause_btn.setEnabled(here or self.can_resume)
        self.pause_btn.setText("Resume" if resume else "Pause")
        self.pause_btn.setToolTip(
            f"Continue run {self.run_id} from its last checkpoint" if self.can_resume else
            "Continue the paused run" if paused_here else "Pause the run (Resume continues it)")
        theme.bind_icon(self.pause_btn, "play" if resume else "pause")
        self.stop_btn.setEnabled(here)
        for w in self.card.settings_widgets:
            w.setEnabled(has and not here)

    # ------------------------------------------------------------------ training here
    def params(self) -> dict[str, Any]:
        return self.card.params()

    def resume_followed(self) -> Worker | None:
        """Continue the followed paused run from its checkpoint."""
        return self.start(resume_run=self.run_id) if self.can_resume else None

    def start(self, resume_run: int | None = None, **overrides: Any) -> Worker | None:
        if self.project is None or self.training_here:
            return None
        self.holder = self.project.lease_holder()
        if self.held_elsewhere:  # one run trains a project at a time
            self.run_state_changed.emit(f"not started: {self._holder_phrase()} trains it")
            self._update_buttons()
            return None
        self._refused = ""
        own = self.params()
        self.card.remember()  # the card's own choice: the demo's 10 epochs are not the next run's
        p = {**own, **overrides}
        self.card.show_params(p)  # the panel shows what runs (e.g. the demo's first run)
        self._card_after = own if overrides else None  # ... and the card's own once it ends
        self._stop_mode = {"stop": "pause"}  # the Stop button makes it "stop"
        self.worker = Worker(runner.train_in_worker, p, resume_run, self._stop_mode,
                             name="training", project_path=self.project.path, max_rate=10.0)
        w = self.worker  # events of a worker shut down meanwhile (another project) are dropped
        self.worker.progress.connect(lambda ev, w=w: self._on_event(ev) if w is self.worker
                                     else None)
        self.worker.finished.connect(lambda w=w: self._on_finished() if w is self.worker
                                     else None)
        self._started_here = None
        self.worker.start()
        self._update_buttons()
        self._set_busy(True, "this window")
        self.worker_started.emit()
        return self.worker

    def toggle_pause(self) -> None:
        if not self.training_here:
            self.resume_followed()
            return
        # the file says so too, so a viewer in another window sees the pause
        if self.worker.is_paused:
            self.worker.resume()
            self._mark(self._started_here, "running", "")
        else:
            self.worker.pause()
            self._mark(self._started_here, "paused", "paused in the app")
        self._update_buttons()
        self.run_state_changed.emit("training paused" if self.worker.is_paused else "training")

    def _mark(self, run_id: int | None, status: str, message: str) -> None:
        if run_id is not None and self.project is not None:
            self.project.update_run(run_id, status=status, message=message)
            self.poll()

    def stop(self) -> None:
        """End this window's run: it keeps its epochs and scores but is not resumable,
        so Start begins a fresh one (a pause, or closing the app, leaves it resumable)."""
        if self.training_here:
            self._stop_mode["stop"] = "stop"  # the trainer ends the run 'stopped'
            self.worker.request_stop()
            self.run_label.setText("Stopping after the current batch…")

    def _on_finished(self) -> None:
        if self._card_after is not None:  # a run with overrides ended: the card's own again
            self.card.show_params(self._card_after)
            self._card_after = None
        self.poll()
        self._update_buttons()
        self.worker_finished.emit()

    def _on_event(self, ev: runner.Event) -> None:
        """Plain values from the worker (see app.training.runner)."""
        kind = ev.kind
        if kind == "refused":  # another trainer took the lease first: nothing started
            self._refused = ev.message
            self.poll()
            return
        if self._started_here != ev.run_id:  # the first event names the run
            self._started_here = ev.run_id
            if self.run_id != ev.run_id:
                self._follow(ev.run_id)
        if kind == "status":
            self.run_label.setText(f"Run {ev.run_id}: {ev.message}")
            return
        if kind == "batch" and ev.value is not None:
            self.plots.batch_loss.append(ev.x, ev.value)
            self.plots.batch_loss.flush()
        elif kind == "em":
            self._em_step += 1
            self.plots.inlier.append(self._em_step, ev.value)
            self.plots.inlier.flush()
            if ev.hist is not None:
                edges, counts = ev.hist
                self.plots.set_histogram(edges, counts)
        elif kind == "epoch":
            self.poll()
        elif kind == "scores":
            if self.project is not None:  # what the next poll will see
                self._scores_seen = self._published()
            self.scores_written.emit(ev.run_id)
