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
import math
import os
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.review.rows import field
from app.settings import DEVICES, settings
from app.training import runner
from app.training.plots import TrainingPlots
from app.widgets import scrolling
from app.workers import Worker, live_workers

METHOD_LABELS = {"deepgum": "DeepGUM (robust)", "l2": "L2 (baseline)",
                 "huber": "Huber", "tukey": "Tukey biweight", "barron": "Barron adaptive"}
ACTIVE = ("running",)
# a run ended by Stop is 'stopped' (not resumable); one paused (Pause, closing the app,
# Ctrl-C) or cut short (failed, its process killed) continues from its checkpoint
RESUMABLE = ("paused", "failed", "interrupted")


def _gone(run: dict[str, Any]) -> bool:
    """A 'running' run whose process, on this host, no longer exists."""
    if field(run, "host") != os.uname().nodename or not field(run, "pid"):
        return False
    try:
        os.kill(int(field(run, "pid")), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return int(field(run, "pid")) == os.getpid() and not any(
        w.objectName() == "training" for w in live_workers())


def _total_epochs(run: dict[str, Any]) -> int:
    params = field(run, "params") or {}
    return int((params.get("config") or {}).get("epochs") or params.get("epochs") or 0)


def _fmt_time(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "–"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


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
        self._em_step = 0
        self._seen_updated: str | None = None
        self._started_here: int | None = None
        self._epoch_secs: list[float] = []
        self._stop_requested = False  # Stop (not Pause, not closing): the run ends 'stopped'
        self._scores_seen: tuple[int | None, int] = (None, -1)
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

        side = QFrame()
        side.setProperty("role", "card")
        side.setFixedWidth(284)
        sv = QVBoxLayout(side)
        sv.setContentsMargins(10, 8, 10, 8)
        sv.setSpacing(6)
        form = QFormLayout()
        form.setVerticalSpacing(2)
        st = settings()
        self.method = QComboBox()
        for m in runner.methods():
            self.method.addItem(METHOD_LABELS.get(m, m), m)
        i = self.method.findData(st.method)
        self.method.setCurrentIndex(max(i, 0))
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(st.epochs)
        self.image_size = QSpinBox()
        self.image_size.setRange(32, 512)
        self.image_size.setSingleStep(32)
        self.image_size.setSuffix(" px")
        self.image_size.setValue(st.image_size)
        self.device = QComboBox()
        for d in DEVICES:
            self.device.addItem({"auto": "Auto", "cpu": "CPU", "cuda": "CUDA (GPU)"}[d], d)
        self.device.setCurrentIndex(max(self.device.findData(st.device), 0))
        form.addRow("Method", self.method)
        form.addRow("Epochs", self.epochs)
        form.addRow("Image size", self.image_size)
        form.addRow("Device", self.device)
        sv.addLayout(form)

        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        self.start_btn = theme.bind_icon(QPushButton("Start"), "play")
        self.start_btn.setProperty("primary", True)
        self.start_btn.setToolTip("Start a new training run with these settings")
        self.start_btn.clicked.connect(lambda: self.start())
        self.pause_btn = theme.bind_icon(QPushButton("Pause"), "pause")
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.stop_btn = theme.bind_icon(QPushButton("Stop"), "stop")
        self.stop_btn.setToolTip("End the run (its scores so far stay; it cannot be resumed)")
        self.stop_btn.clicked.connect(self.stop)
        # Pause becomes Resume: it is as wide as its longest text, so no label is clipped
        probe = QPushButton(theme.icon("play"), "Resume")
        self.pause_btn.setMinimumWidth(probe.sizeHint().width())
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            buttons.addWidget(b)
        sv.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no run")
        sv.addWidget(self.progress)
        self.run_label = QLabel("No run yet")
        self.run_label.setWordWrap(True)
        self.run_label.setProperty("role", "muted")
        sv.addWidget(self.run_label)
        # the latest loss / val error / inliers / images/s sit in the plots' titles and
        # the time left in the progress bar, so the card stays short enough for 1280x800
        self.failure = QLabel("")
        self.failure.setWordWrap(True)
        self.failure.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.failure.hide()
        sv.addWidget(self.failure)
        sv.addStretch(1)
        root.addWidget(scrolling(side))

        self.plots = TrainingPlots()
        root.addWidget(self.plots, 1)
        self._update_buttons()

    # ------------------------------------------------------------------ project
    def set_project(self, project: Any) -> None:
        self.project = project
        self.run_id = None
        self._last_epoch = -1
        self._seen_updated = None
        self._scores_seen = (None, -1)
        self._runs_stamp: tuple = ()
        self._started_here = None
        self._stop_requested = False
        self.plots.clear()
        if project is None:
            self.timer.stop()
            return
        sr = project.scored_run()
        self._scores_seen = (sr, -1 if sr is None else project.scores_version(sr))
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
    def poll(self) -> None:
        """Cheap: the runs (a few rows) and the epochs after the last one shown."""
        if self.project is None:
            return
        runs = self.project.runs()
        if not runs:
            self._show_run(None)
            return
        latest = runs[-1]
        if self.run_id != field(latest, "id"):
            self._follow(field(latest, "id"))
        run = next(r for r in runs if field(r, "id") == self.run_id)
        if field(run, "updated_at") != self._seen_updated:
            self._seen_updated = field(run, "updated_at")
            rows = self.project.epochs(self.run_id, after=self._last_epoch)
            for row in rows:
                self._add_epoch(row)
            if rows:
                self.plots.flush()
        self._show_run(run)
        # every scores write of any run (this window's, or `gumshoe train` elsewhere)
        # re-ranks; a write touches its run's row, so look only when a run changed
        stamp = tuple((field(r, "id"), field(r, "updated_at")) for r in runs)
        if stamp != self._runs_stamp:
            self._runs_stamp = stamp
            sr = self.project.scored_run()
            seen = (sr, -1 if sr is None else self.project.scores_version(sr))
            if seen != self._scores_seen:
                self._scores_seen = seen
                if sr is not None:
                    self.scores_written.emit(sr)

    def _follow(self, run_id: int) -> None:
        self.run_id = run_id
        self._last_epoch = -1
        self._em_step = 0
        self._epoch_secs = []
        self._seen_updated = None
        self.plots.clear()

    def _add_epoch(self, row: dict[str, Any]) -> None:
        e = int(field(row, "epoch"))
        x = e + 1
        self._last_epoch = e
        for s in self.plots.series.values():
            if s is not self.plots.inlier and s is not self.plots.batch_loss:
                s.replace_from(x)
        self.plots.loss.append(x, field(row, "train_loss"))
        self.plots.val.append(x, field(row, "val_error"))
        self.plots.speed.append(x, field(row, "images_per_s"))
        metrics = field(row, "metrics") or {}
        if self._started_here != self.run_id:  # from the file only: one EM point per epoch
            if field(row, "inlier_fraction") is not None:
                self._em_step += 1
                self.plots.inlier.append(self._em_step, field(row, "inlier_fraction"))
            hist = metrics.get("histogram")
            if isinstance(hist, list) and hist:
                n = len(hist)
                self.plots.set_histogram(np.linspace(0, 1, n + 1), np.asarray(hist))
        if field(row, "seconds") is not None:
            self._epoch_secs.append(float(field(row, "seconds")))

    def _show_run(self, run: dict[str, Any] | None) -> None:
        if run is None:
            self._run_status = ""
            self._set_busy(self.training_here, "this window")
            self.run_label.setText("No run yet. Pick a method and press Start, or run "
                                   "`gumshoe train` on this project elsewhere: it shows here.")
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("no run")
            self.failure.hide()
            self._update_buttons()
            self.run_state_changed.emit("no run")
            return
        status = field(run, "status")
        if status == "running" and field(run, "id") != self._started_here and _gone(run):
            status = "interrupted"  # its process ended without saying so (killed)
        self._run_status = status
        total = _total_epochs(run)
        done = self._last_epoch + 1
        where = self._who(run)
        self.run_label.setText(f"Run {field(run, 'id')} · {field(run, 'method')} · {status}"
                               f"{' · ' + field(run, 'device') if field(run, 'device') else ''}\n"
                               f"{'trained' if status in ACTIVE else 'started'} by {where}")
        self._set_busy(status in ACTIVE or self.training_here,
                       f"run {field(run, 'id')} ({field(run, 'method')}) by {where}")
        left = None
        if status in ACTIVE and total and done:
            per_epoch = self._mean_epoch_seconds()
            if per_epoch:
                left = per_epoch * (total - done)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))
        self.progress.setFormat(f"epoch {done}/{total or '?'}"
                                + (f" · {_fmt_time(left)} left" if left is not None else ""))
        last = {k: (s.y[-1] if s.y else None) for k, s in self.plots.series.items()}
        self.plots.set_value("loss", "" if last["loss"] is None else f"{last['loss']:.3g}")
        self.plots.set_value("val", "" if last["val"] is None else
                            f"{last['val']:.2g}" if abs(last["val"]) < 1 else f"{last['val']:.3g}")
        self.plots.set_value("inlier", "" if last["inlier"] is None else f"{last['inlier']:.1%}")
        self.plots.set_value("speed", "" if last["speed"] is None else f"{last['speed']:.0f}")
        names = {"loss": "loss", "val": "val error", "inlier": "inliers", "speed": "images/s"}
        self.progress.setToolTip("\n".join(f"{label}: {self.plots.value(k)}"
                                           for k, label in names.items() if self.plots.value(k)))
        if field(run, "message") and status == "failed":
            self.failure.setText(f"<span style='color:{theme.colors().outlier}'>"
                                 f"{html.escape(str(field(run, 'message')))}</span>")
            self.failure.show()
        else:
            self.failure.hide()
        self._update_buttons()
        self.run_state_changed.emit(f"run {field(run, 'id')} {field(run, 'method')}: {status}, "
                                    f"epoch {done}/{total or '?'}")

    def _who(self, run: dict[str, Any]) -> str:
        """Who trains (or trained) ``run``, in a phrase."""
        if self._started_here == field(run, "id") or (self.training_here and self.run_id == field(run, "id")):
            return "this window"
        here = field(run, "host") == os.uname().nodename
        if field(run, "pid") == os.getpid() and here:
            return "another window of this app"
        return f"pid {field(run, 'pid')} on {field(run, 'host') or '?'}"

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
            total = _total_epochs(self.project.run(self.run_id)) or "?"
        return self._last_epoch + 1, total

    def _mean_epoch_seconds(self) -> float | None:
        secs = self._epoch_secs[-3:]
        return float(np.mean(secs)) if secs else None

    @property
    def can_resume(self) -> bool:
        """The followed run is paused or cut short and nobody trains it: Resume
        continues it from its checkpoint."""
        return (not self.training_here and self.run_id is not None
                and self._run_status in RESUMABLE)

    def _update_buttons(self) -> None:
        here = self.training_here
        has = self.project is not None
        paused_here = here and self.worker.is_paused
        # Start: always a fresh run (other settings), unless a run is training
        self.start_btn.setEnabled(has and not here and self._run_status not in ACTIVE)
        # Pause / Resume: this window's run, or resume the followed paused run
        resume = paused_here or self.can_resume
        self.pause_btn.setEnabled(here or self.can_resume)
        self.pause_btn.setText("Resume" if resume else "Pause")
        self.pause_btn.setToolTip(
            f"Continue run {self.run_id} from its last checkpoint" if self.can_resume else
            "Continue the paused run" if paused_here else "Pause the run (Resume continues it)")
        theme.bind_icon(self.pause_btn, "play" if resume else "pause")
        self.stop_btn.setEnabled(here)
        for w in (self.method, self.epochs, self.image_size, self.device):
            w.setEnabled(has and not here)

    # ------------------------------------------------------------------ training here
    def params(self) -> dict[str, Any]:
        size = max(32, round(self.image_size.value() / 32) * 32)  # the network wants x32
        return {"method": self.method.currentData(), "epochs": self.epochs.value(),
                "image_size": size, "device": self.device.currentData()}

    def _show_params(self, p: dict[str, Any]) -> None:
        i = self.method.findData(p["method"])
        if i >= 0:
            self.method.setCurrentIndex(i)
        self.epochs.setValue(int(p["epochs"]))
        self.image_size.setValue(int(p["image_size"]))
        i = self.device.findData(p["device"])
        if i >= 0:
            self.device.setCurrentIndex(i)

    def resume_followed(self) -> Worker | None:
        """Continue the followed paused run from its checkpoint."""
        return self.start(resume_run=self.run_id) if self.can_resume else None

    def start(self, resume_run: int | None = None, **overrides: Any) -> Worker | None:
        if self.project is None or self.training_here:
            return None
        p = {**self.params(), **overrides}
        self._show_params(p)  # the panel shows what runs (e.g. the demo's first run)
        st = settings()
        st.method, st.epochs, st.image_size, st.device = (p["method"], p["epochs"],
                                                          p["image_size"], p["device"])
        self._stop_requested = False
        self.worker = Worker(runner.train_in_worker, p, resume_run, name="training",
                             project_path=self.project.path, max_rate=10.0)
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
            self._stop_requested = True
            self.worker.request_stop()
            self.run_label.setText("Stopping after the current batch…")

    def _on_finished(self) -> None:
        run_id = self._started_here
        if self._stop_requested and run_id is not None and self.project is not None \
                and field(self.project.run(run_id), "status") == "paused":
            self.project.update_run(run_id, status="stopped", message="stopped in the app")
        self._stop_requested = False
        self.poll()
        self._update_buttons()
        self.worker_finished.emit()

    def _on_event(self, ev: runner.Event) -> None:
        """Plain values from the worker (see app.training.runner)."""
        kind = ev.kind
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
                self._scores_seen = (ev.run_id, self.project.scores_version(ev.run_id))
            self.scores_written.emit(ev.run_id)
