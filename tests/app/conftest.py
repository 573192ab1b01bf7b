"""Qt test setup: offscreen platform (set before any Qt import), settings in a
temporary folder, no dialogs, and a check that no test leaves a thread running."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from app import qtfix  # noqa: E402
from tests.app.fakes import make_project  # noqa: E402

qtfix.install()  # PySide6 6.12 on Python 3.11 leaks references to None


@pytest.fixture(autouse=True)
def _settings_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from app import errors, settings

    settings.configure(tmp_path / "config")
    monkeypatch.setenv("GUMSHOE_DATA_DIR", str(tmp_path / "data"))
    s = errors.ErrorSink(show_dialogs=False)
    errors.set_sink(s)
    yield s
    settings.configure(None)
    errors.set_sink(None)


@pytest.fixture(autouse=True)
def _no_threads_left(request: pytest.FixtureRequest):
    """Fail a test that leaves a QThread worker or a Python thread running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    from app import workers

    running = workers.live_workers()
    deadline = time.monotonic() + 2.0
    extra: list[threading.Thread] = []
    while time.monotonic() < deadline:
        running = workers.live_workers()
        extra = [t for t in threading.enumerate()
                 if t.ident not in before and t.is_alive() and not t.daemon]
        if not running and not extra:
            break
        time.sleep(0.02)
    if running or extra:
        workers.stop_all(5)
        pytest.fail(f"test left threads running: {[w.objectName() for w in running]} "
                    f"{[t.name for t in extra]}")


@pytest.fixture
def errors_seen(_settings_in_tmp):
    return _settings_in_tmp.history


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p.gumshoe", n=40, scored=True)


def open_window(qtbot, path: Path):
    """A shown main window on ``path`` with the queue loaded and a sample in the editor
    (closing it asks nothing: tests answer 'yes, stop training')."""
    from app.main_window import MainWindow

    win = MainWindow()
    win.confirm_close = False
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    with qtbot.waitSignal(win.queue.model.reset_done, timeout=10_000):
        assert win.open_project(path)
    qtbot.waitUntil(lambda: win.editor.sample is not None, timeout=5000)
    return win


@pytest.fixture
def window(qtbot, project_path: Path):
    win = open_window(qtbot, project_path)
    yield win
    win.close()
