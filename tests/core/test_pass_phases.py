"""A training pass reports where its time went (the phase clock): the model's
step, the batch preparation, the wait for the loader and the rest, measured in
the pass itself (what ``benchmarks/bench_throughput.py`` reports as the
trainer's step share)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.project import Project
from core.training import Recorder, TrainConfig, load_data
from core.training.events import Callbacks
from core.training.loop import Trainer
from core.training.step import PassStats
from core.training.throughput import PhaseClock
from tests.core.synth import make_dots_project


def test_the_clock_gives_each_phase_the_time_since_the_last_mark() -> None:
    clock = PhaseClock()
    time.sleep(0.02)
    clock.mark("wait")
    time.sleep(0.06)
    clock.mark("step")
    clock.mark("other")  # nothing since the last mark
    shares = PassStats(0.0, 0.0, 0.0, {}, dict(clock.seconds)).phases  # as a pass reports them
    assert set(shares) == set(PhaseClock.PHASES)
    # a sleep may run long on a busy machine, never short
    assert clock.seconds["wait"] >= 0.02 and clock.seconds["step"] >= 0.06
    assert clock.seconds["prepare"] == 0.0 and clock.seconds["other"] < clock.seconds["wait"]
    assert shares["step"] == pytest.approx(
        clock.seconds["step"] / sum(clock.seconds.values()))
    assert sum(shares.values()) == pytest.approx(1.0)


def test_a_training_pass_reports_its_phases(tmp_path: Path) -> None:
    path = make_dots_project(tmp_path, n=96)
    with Project.open(path) as p:
        data = load_data(p, 32)
    cfg = TrainConfig(image_size=32, batch_size=16, seed=0, epochs=1, workers=0)
    t = Trainer(0, cfg, data, Callbacks(), lambda: False, Recorder(), tmp_path / "ck.pt",
                writer=False)
    try:
        t.method.start(t.fit_context(0))
        stats = t.train_epoch()
    finally:
        t.close()
    assert set(stats.phases) == set(PhaseClock.PHASES) == set(stats.phase_seconds)
    assert sum(stats.phases.values()) == pytest.approx(1.0)
    # the model's forward, backward and step are most of a pass; the jitter runs
    assert stats.phases["step"] > 0.3 and stats.phases["prepare"] > 0.0
    assert stats.data_wait_share == pytest.approx(stats.phases["wait"], rel=0.05, abs=1e-3)
