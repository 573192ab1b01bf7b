"""A review session driven by key presses only: how many keys an annotator needs per
fixed sample, and how long the next sample takes to appear.

A scripted annotator works down the ranked queue of a project whose errors are
known (the demo's contamination, ``Project.contamination``). For each sample it
looks, as a person would, at where each landmark should be (the label as first
imported) and presses only keys, in the main window, offscreen:

* no known error: ``C`` (the label is right; the editor moves on);
* left and right exchanged: ``S``;
* most of the face wrong: ``Ctrl+Shift+A`` (the model's whole label);
* some landmarks wrong: for each one still wrong, selected with ``Tab`` (flagged,
  worst first) or ``N`` (any landmark), ``A`` when the model's estimate is within
  the tolerance of where it belongs, else arrow keys (``Shift+arrow`` 10 px, arrow
  1 px) until it is;

then ``J`` for the next sample. A landmark counts as fixed within ``tol`` of the
long image side (default 5 %: the model's own precision on the demo; see
``--tol``). Keys are counted per sample and grouped by what was wrong.

    QT_QPA_PLATFORM=offscreen python benchmarks/review_session.py demo.gumshoe \\
        --n 50 --json benchmarks/results/review_session.json

A project path that does not exist is made as the app's demo (300 faces) and
trained as on the app's first start (DeepGUM, 10 epochs, 64 px); a project without
a trained run is trained that way too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _keys(win: Any, app: Any, key: Any, mod: Any = None) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.keyClick(win, key, mod if mod is not None else Qt.KeyboardModifier.NoModifier)
    app.processEvents()


def _kind(cur: np.ndarray, truth: np.ndarray, perm: np.ndarray, tol: float) -> tuple[str, list[int]]:
    d = np.linalg.norm(cur - truth, axis=1)
    wrong = [int(i) for i in np.flatnonzero(~(d <= tol))]
    if not wrong:
        return "right", []
    if np.allclose(cur, truth[perm], equal_nan=True):
        return "swapped", wrong
    if len(wrong) > len(cur) // 2:
        return "face", wrong
    return ("1 point" if len(wrong) == 1 else "2+ points"), wrong


def _select(win: Any, app: Any, ed: Any, i: int, count: list[int]) -> None:
    """Select landmark ``i`` by keys: Tab through the flags if it is one, else N."""
    from PySide6.QtCore import Qt

    if ed.canvas.selected == i:
        return
    order = ed.state.flagged_order() or ed.state.flagged_order(only_open=False)
    if i in order:
        for _ in range(len(order)):
            _keys(win, app, Qt.Key.Key_Tab)
            count[0] += 1
            if ed.canvas.selected == i:
                return
    k = ed.state.n_keypoints
    cur = ed.canvas.selected
    fwd = (i - cur) % k if cur >= 0 else i + 1
    back = (cur - i) % k if cur >= 0 else k - i
    key_mod = (Qt.KeyboardModifier.NoModifier if fwd <= back else
               Qt.KeyboardModifier.ShiftModifier)
    for _ in range(k):
        _keys(win, app, Qt.Key.Key_N, key_mod)
        count[0] += 1
        if ed.canvas.selected == i:
            return
    raise AssertionError(f"could not select landmark {i} by keys")


def _nudge_to(win: Any, app: Any, ed: Any, i: int, target: np.ndarray, tol: float,
              count: list[int]) -> None:
    from PySide6.QtCore import Qt

    shift = Qt.KeyboardModifier.ShiftModifier
    for _ in range(400):
        d = target - ed.label.points[i]
        if float(np.hypot(*d)) <= tol:
            return
        axis = 0 if abs(d[0]) >= abs(d[1]) else 1
        step = d[axis]
        key = ((Qt.Key.Key_Right if step > 0 else Qt.Key.Key_Left) if axis == 0 else
               (Qt.Key.Key_Down if step > 0 else Qt.Key.Key_Up))
        _keys(win, app, key, shift if abs(step) >= 10 else None)
        count[0] += 1
    raise AssertionError(f"landmark {i} did not reach its place by arrow keys")


def run_session(win: Any, app: Any, n: int, tol_frac: float = 0.05) -> dict[str, Any]:
    """Review the queue's top ``n`` samples of the open project by keys. Returns the
    keys per sample by kind, the switch times and what is still wrong afterwards."""
    from PySide6.QtCore import Qt

    ed, q = win.editor, win.queue
    project = win.project
    perm = project.schema.flip_permutation()
    ed.setFocus()
    q.select_row(0)
    app.processEvents()
    samples: list[dict[str, Any]] = []
    painted_ms: list[float] = []
    for _row in range(n):
        st = ed.state
        sid = st.sample.id
        truth = project.original_label(sid).points
        tol = tol_frac * max(st.sample.width, st.sample.height)
        kind, wrong = _kind(st.label.points, truth, perm, tol)
        sc0 = st.scores
        estimate_ok = bool(wrong) and sc0 is not None and all(
            sc0.predicted(i) and np.hypot(*(sc0.prediction[i] - truth[i])) <= tol for i in wrong)
        first_selected = ed.canvas.selected
        count = [0]
        if kind == "right":
            before = time.perf_counter()
            _keys(win, app, Qt.Key.Key_C)  # confirms and moves on
            count[0] += 1
        else:
            if kind == "swapped":
                _keys(win, app, Qt.Key.Key_S)
                count[0] += 1
            elif kind == "face":
                _keys(win, app, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier
                      | Qt.KeyboardModifier.ShiftModifier)
                count[0] += 1
                # now every landmark is the model's: some may be off where they were right
                d = np.linalg.norm(ed.label.points - truth, axis=1)
                wrong = [int(i) for i in np.flatnonzero(~(d <= tol))]
            for i in sorted(wrong, key=lambda j: (j not in ed.state.flagged_order(), j)):
                if np.hypot(*(ed.label.points[i] - truth[i])) <= tol:
                    continue
                _select(win, app, ed, i, count)
                sc = ed.state.scores
                if sc is not None and sc.predicted(i) and \
                        np.hypot(*(sc.prediction[i] - truth[i])) <= tol:
                    _keys(win, app, Qt.Key.Key_A)
                    count[0] += 1
                else:
                    _nudge_to(win, app, ed, i, truth[i], tol, count)
            before = time.perf_counter()
            _keys(win, app, Qt.Key.Key_J)
            count[0] += 1
        # the next sample painted with its image
        t_end = time.perf_counter() + 10
        while not ed.canvas.has_image and time.perf_counter() < t_end:
            app.processEvents()
        ed.canvas.viewport().repaint()
        painted_ms.append((time.perf_counter() - before) * 1000)
        after = project.current_label(sid).points
        left = int((~(np.linalg.norm(after - truth, axis=1) <= tol)).sum())
        samples.append({"sample_id": sid, "kind": kind, "wrong": len(wrong), "keys": count[0],
                        "still_wrong": left, "estimate_ok": estimate_ok,
                        "wrong_point_selected": len(wrong) == 1 and first_selected == wrong[0]})
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({s["kind"] for s in samples}):
        these = [s for s in samples if s["kind"] == kind]
        keys = [s["keys"] for s in these]
        by_kind[kind] = {"samples": len(keys), "keys_mean": round(statistics.mean(keys), 2),
                         "keys_median": statistics.median(keys), "keys_max": max(keys)}
        good = [s["keys"] for s in these if s["estimate_ok"]]
        if kind != "right":
            by_kind[kind]["model_estimate_within_tol"] = len(good)
            if good:
                by_kind[kind]["keys_mean_when_estimate_within_tol"] = round(
                    statistics.mean(good), 2)
    return {"samples": samples, "by_kind": by_kind,
            "keys_total": sum(s["keys"] for s in samples),
            "still_wrong": sum(s["still_wrong"] for s in samples),
            "painted_ms_median": round(statistics.median(painted_ms), 1),
            "painted_ms_p95": round(sorted(painted_ms)[int(0.95 * (len(painted_ms) - 1))], 1),
            "tol_frac": tol_frac}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("project", type=Path, help="a project with known errors (e.g. the demo)")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--tol", type=float, default=0.05, help="fixed within this share of the "
                    "image's long side (default: %(default)s)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from app import errors, qtfix, settings, theme
    from core.project import Project

    qtfix.install()
    made = not args.project.exists()
    if made:
        from core.demo import make_demo

        make_demo(args.project)
    with Project.open(args.project) as p:
        trained = p.scored_run() is not None
    t_train = None
    if not trained:
        from core.training import TrainConfig, train

        t0 = time.perf_counter()
        train(args.project, TrainConfig(epochs=10, image_size=64))
        t_train = round(time.perf_counter() - t0, 1)
    settings.configure(tempfile.mkdtemp(prefix="gumshoe-session-"))
    settings.settings().annotator = "session"
    app = QApplication.instance() or QApplication(sys.argv[:1])
    errors.set_sink(errors.ErrorSink(show_dialogs=False))
    theme.apply(app, "light")
    from app.main_window import MainWindow

    win = MainWindow()
    win.confirm_close = False
    win.resize(1920, 1080)
    win.show()
    win.open_project(args.project)
    t_end = time.perf_counter() + 60
    while (win.editor.state is None or not win.queue.model.loaded) and time.perf_counter() < t_end:
        app.processEvents()
    res = run_session(win, app, args.n, args.tol)
    win.close()
    out = {"command": "python benchmarks/review_session.py " + " ".join(argv or sys.argv[1:]),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
           "project": str(args.project), "demo_made_here": made, "trained_here_s": t_train,
           **res}
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "samples"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
