"""Measure the app's responsiveness (offscreen). Each prints one JSON line.

    python -m app.perf make-big /tmp/big.gumshoe --n 100000   # a scored 100 000-sample project
    python -m app.perf queue /tmp/big.gumshoe                  # time to open the queue, scroll
    python -m app.perf switch PROJECT [--n 60]                 # time to switch to the next sample
    python -m app.perf stall PROJECT [--epochs 3 --size 64]    # GUI event-loop lateness while training
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def make_big(path: Path, n: int) -> None:
    import cv2
    import numpy as np

    from core.project import LabelSchema, NewSample, Project, ScoreRow

    path.unlink(missing_ok=True)
    img_dir = path.with_name(path.stem + "-images")
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(16):  # 16 real images shared by all samples
        cv2.imwrite(str(img_dir / f"img_{i:02d}.jpg"),
                    rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    schema = LabelSchema("landmarks", "five", ("a", "b", "c", "d", "e"))
    t0 = time.perf_counter()
    with Project.create(path, schema) as p:
        src = p.add_source(img_dir, "synthetic", "landmarks")
        for b in range(0, n, 10_000):
            p.add_samples(src, [NewSample(
                key=f"s{i}", path=f"img_{i % 16:02d}.jpg", width=640, height=480,
                content_hash=str(i), points=rng.random((5, 2)) * (640, 480),
                split=("train", "train", "val")[i % 3]) for i in range(b, min(b + 10_000, n))])
        run = p.create_run("deepgum", {"config": {"epochs": 1}})
        rows = []
        for sid in range(1, n + 1):
            lm = rng.normal(-2, 2, 5)
            rows.append(ScoreRow(sid, float(lm.max()), float(1 / (1 + np.exp(-lm.max()))),
                                 list(lm), prediction=list(rng.random(10) * 480)))
        p.write_scores(run, rows)
        p.update_run(run, status="finished")
    print(json.dumps({"made": str(path), "samples": n, "seconds": round(time.perf_counter() - t0, 1)}))


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, the high-water mark of its own
    address space (ru_maxrss would also count the parent that forked it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _app():
    from PySide6.QtWidgets import QApplication

    from app import errors, settings, theme

    settings.configure(tempfile.mkdtemp(prefix="gumshoe-perf-"))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    errors.set_sink(errors.ErrorSink(show_dialogs=False))
    theme.apply(app, "light")
    return app


def _pump(app, cond, timeout_s: float = 60.0) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("condition not met")
        time.sleep(0.001)
    return time.perf_counter() - t0


def queue(path: Path) -> None:
    app = _app()
    from app.main_window import MainWindow

    win = MainWindow()
    win.resize(1280, 800)
    win.show()
    app.processEvents()
    t0 = time.perf_counter()
    win.open_project(path)
    t_open_call = time.perf_counter() - t0
    _pump(app, lambda: win.queue.model.loaded)
    t_rows = time.perf_counter() - t0
    _pump(app, lambda: win.editor.sample is not None)
    t_first = time.perf_counter() - t0
    _pump(app, lambda: win.queue.model.counted)  # the whole ordering, read in the background
    t_counted = time.perf_counter() - t0
    # scroll: jump the table to 20 random places; time GUI-thread work and fill latency
    import random

    table, model = win.queue.table, win.queue.model
    random.seed(0)
    gui_ms, fill_ms = [], []
    for _ in range(20):
        r = random.randrange(model.rowCount())
        t = time.perf_counter()
        table.scrollTo(model.index(r, 0))
        table.viewport().repaint()
        gui_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        _pump(app, lambda r=r: model.sample_id(r) is not None)
        table.viewport().repaint()
        fill_ms.append((time.perf_counter() - t) * 1000)
    win.confirm_close = False
    win.close()
    print(json.dumps({
        "samples": model.rowCount(), "open_call_s": round(t_open_call, 3),
        "rows_shown_s": round(t_rows, 3), "first_sample_shown_s": round(t_first, 3),
        "all_rows_counted_s": round(t_counted, 3),
        "peak_rss_mb": _peak_rss_mb(),
        "scroll_gui_ms_max": round(max(gui_ms), 1),
        "scroll_fill_ms_median": round(sorted(fill_ms)[10], 1),
        "scroll_fill_ms_max": round(max(fill_ms), 1)}))


def switch(path: Path, n: int) -> None:
    app = _app()
    from app.main_window import MainWindow

    win = MainWindow()
    win.resize(1920, 1080)
    win.show()
    win.open_project(path)
    _pump(app, lambda: win.editor.sample is not None and win.editor.canvas.has_image)
    ed = win.editor
    sync_ms, visible_ms = [], []
    for _ in range(n):
        _pump(app, lambda: True, 0)
        t = time.perf_counter()
        ed.next_requested.emit()  # what J does
        sync_ms.append(ed.last_switch_ms)
        app.processEvents()
        _pump(app, lambda: ed.canvas.has_image)
        win.editor.canvas.viewport().repaint()
        visible_ms.append((time.perf_counter() - t) * 1000)
        time.sleep(0.03)  # an annotator glances at it; the prefetch lands meanwhile
    win.confirm_close = False
    win.close()
    q = sorted(sync_ms)
    v = sorted(visible_ms)
    print(json.dumps({"project": str(path), "switches": n,
                      "switch_ms_median": round(q[n // 2], 1), "switch_ms_p95": round(q[int(n * .95)], 1),
                      "painted_ms_median": round(v[n // 2], 1), "painted_ms_p95": round(v[int(n * .95)], 1),
                      "painted_ms_max": round(v[-1], 1)}))


def stall(path: Path, epochs: int, size: int, nav_ms: int = 400) -> None:
    app = _app()
    from PySide6.QtCore import QTimer

    from app.main_window import MainWindow

    win = MainWindow()
    win.resize(1280, 800)
    win.show()
    win.open_project(path)
    _pump(app, lambda: win.editor.sample is not None)
    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - 5.0))
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    w = win.training.start(epochs=epochs, image_size=size)
    t0 = time.perf_counter()
    timer.start()
    nav = QTimer()
    nav.setInterval(max(nav_ms, 1))  # an annotator working meanwhile: next sample
    nav.timeout.connect(lambda: win.editor.next_requested.emit())
    if nav_ms > 0:
        nav.start()
    big: list[tuple[float, float]] = []
    orig_tick = tick

    def tick() -> None:  # noqa: F811 - wraps the first one to keep the worst ticks' times
        orig_tick()
        if late[-1] > 30:
            big.append((round(time.perf_counter() - t0, 2), round(late[-1], 1)))

    timer.timeout.disconnect()
    timer.timeout.connect(tick)
    _pump(app, lambda: not w.isRunning(), 3600)
    timer.stop()
    nav.stop()
    wall = time.perf_counter() - t0
    win.confirm_close = False
    win.close()
    s = sorted(late)
    print(json.dumps({"epochs": epochs, "image_size": size, "train_s": round(wall, 1),
                      "ticks": len(s), "lateness_ms_p50": round(s[len(s) // 2], 1),
                      "lateness_ms_p99": round(s[int(len(s) * .99)], 1),
                      "lateness_ms_max": round(s[-1], 1), "over_30ms": big[:20],
                      "error": w.error}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("make-big")
    a.add_argument("path", type=Path)
    a.add_argument("--n", type=int, default=100_000)
    a = sub.add_parser("queue")
    a.add_argument("path", type=Path)
    a = sub.add_parser("switch")
    a.add_argument("path", type=Path)
    a.add_argument("--n", type=int, default=60)
    a = sub.add_parser("stall")
    a.add_argument("path", type=Path)
    a.add_argument("--epochs", type=int, default=3)
    a.add_argument("--size", type=int, default=64)
    a.add_argument("--nav-ms", type=int, default=400, help="next sample every N ms (0: none)")
    args = ap.parse_args(argv)
    if args.cmd == "make-big":
        make_big(args.path, args.n)
    elif args.cmd == "queue":
        queue(args.path)
    elif args.cmd == "switch":
        switch(args.path, args.n)
    else:
        stall(args.path, args.epochs, args.size, args.nav_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
