"""The training dock's card: the run's settings (method, epochs, image size,
device), its Start / Pause / Stop buttons, its progress, who runs it, and the
line that says why it failed or learnt nothing, with the phrases those labels
use (who holds the lease, who trained a run, the time left). The panel
(:mod:`app.training.panel`) wires the buttons and decides what the texts say."""

from __future__ import annotations

import math
import os
from typing import Any

from PySide6.QtCore import Qt
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
from app.settings import DEVICES, settings
from app.training import runner
from core.project import LeaseInfo, Run
from core.training.config import AUTO_EPOCHS_TEXT

METHOD_LABELS = {"deepgum": "DeepGUM (robust)", "l2": "L2 (baseline)",
                 "huber": "Huber", "tukey": "Tukey biweight", "barron": "Barron adaptive"}

OWNERS = {"cli": "gumshoe train", "gui": "the app", "bench": "gumshoe bench"}  # lease owners


def clock_time(s: float | None) -> str:
    """``m:ss`` or ``h:mm:ss`` (a dash when unknown)."""
    if s is None or not math.isfinite(s):
        return "–"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def holder_phrase(holder: LeaseInfo | None, training_here: bool, since: bool = True) -> str:
    """Who holds the project's training lease, in a phrase ("this window",
    "gumshoe train, pid 812 on lab-2, since 14:02")."""
    if holder is None:
        return "this window" if training_here else ""
    if holder.pid == os.getpid() and holder.host == os.uname().nodename:
        return "this window" if training_here else "another window of this app"
    who = f"{OWNERS.get(holder.owner, holder.owner)}, pid {holder.pid} on {holder.host}"
    if not since:
        return who
    return f"{who}, since {holder.since[11:16] if len(holder.since) >= 16 else holder.since}"


def who_trained(run: Run, this_window: bool) -> str:
    """Who trains (or trained) ``run``, in a phrase."""
    if this_window:
        return "this window"
    if run.pid == os.getpid() and run.host == os.uname().nodename:
        return "another window of this app"
    return f"pid {run.pid} on {run.host or '?'}"


class RunCard(QFrame):
    """The settings, buttons, progress bar and labels of the training dock."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "card")
        self.setFixedWidth(284)
        sv = QVBoxLayout(self)
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
        self.epochs.setRange(0, 1000)
        self.epochs.setSpecialValueText("Auto")  # 0
        self.epochs.setToolTip(f"Auto: {AUTO_EPOCHS_TEXT}")
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
        self.pause_btn = theme.bind_icon(QPushButton("Pause"), "pause")
        self.stop_btn = theme.bind_icon(QPushButton("Stop"), "stop")
        self.stop_btn.setToolTip("End the run (its scores so far stay; it cannot be resumed)")
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

    @property
    def settings_widgets(self) -> tuple[QWidget, ...]:
        return (self.method, self.epochs, self.image_size, self.device)

    def params(self) -> dict[str, Any]:
        size = max(32, round(self.image_size.value() / 32) * 32)  # the network wants x32
        return {"method": self.method.currentData(), "epochs": self.epochs.value(),
                "image_size": size, "device": self.device.currentData()}

    def remember(self) -> None:
        """Keep the card's settings for the next run and the next session."""
        p, st = self.params(), settings()
        st.method, st.epochs, st.image_size, st.device = (p["method"], p["epochs"],
                                                          p["image_size"], p["device"])

    def show_params(self, p: dict[str, Any]) -> None:
        i = self.method.findData(p["method"])
        if i >= 0:
            self.method.setCurrentIndex(i)
        self.epochs.setValue(int(p["epochs"]))
        self.image_size.setValue(int(p["image_size"]))
        i = self.device.findData(p["device"])
        if i >= 0:
            self.device.setCurrentIndex(i)

