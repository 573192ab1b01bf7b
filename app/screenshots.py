"""Regenerate the screenshots in docs/ (offscreen): the main window on the demo
project at 1280x800 and 1920x1080, light and dark, the history dock after a fix
made by keys, the keyboard help, and the age editor.

    QT_QPA_PLATFORM=offscreen python -m app.screenshots [--out docs] [--train [--epochs 30]]

With --train the light window trains a DeepGUM run first (30 epochs at 64 px on the
300-face demo: a few minutes on a laptop CPU), so the model's estimates sit on the
faces and the queue is ranked; the top-ranked sample is shown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _demo(path: Path, n: int) -> Path:
    from core.demo import make_demo

    if not path.exists():
        make_demo(path, n=n)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    ap.add_argument("--project", type=Path, help="project to show (default: a fresh demo)")
    ap.add_argument("-n", type=int, default=300, help="demo size")
    ap.add_argument("--train", action="store_true",
                    help="train first (live plots, ranked queue, the model's estimates)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of that run")
    ap.add_argument("--image-size", type=int, default=64, help="image size of that run")
    ap.add_argument("--row", type=int, default=-1,
                    help="queue row to show (default: the highest-ranked of the top 40 that "
                         "the run calls a few points off, with 1-3 flagged landmarks: its bad "
                         "points and the model's estimates read clearly; else the top)")
    ap.add_argument("--age-source", type=Path,
                    help="an age dataset folder (e.g. UTKFace): also shoot the age editor "
                         "on 150 of its images, after a run of --epochs")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app import errors, settings, theme, workers

    tmp = Path(tempfile.mkdtemp(prefix="gumshoe-shots-"))
    settings.configure(tmp / "config")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    errors.set_sink(errors.ErrorSink(show_dialogs=False))
    st = settings.settings()
    st.annotator = "ana"
    project = args.project or _demo(tmp / "demo.gumshoe", args.n)

    from app.main_window import MainWindow

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait_until(cond, timeout_ms: int = 30_000) -> None:  # noqa: ANN001
        waited = 0
        while not cond() and waited < timeout_ms:
            wait(50)
            waited += 50

    args.out.mkdir(parents=True, exist_ok=True)
    shots = []
    for mode in ("light", "dark"):
        theme.apply(app, mode)
        win = MainWindow()
        win.confirm_close = False
        win.resize(1280, 800)
        win.show()
        win.open_project(project)
        wait_until(lambda w=win: w.editor.sample is not None and w.editor.canvas.has_image)
        if args.train and mode == "light":
            w = win.training.start(epochs=args.epochs, image_size=args.image_size)
            wait_until(lambda w=w: w is not None and not w.isRunning(), 1_800_000)
            wait_until(lambda win=win: win.queue.model.loaded)
        win.queue.table.scrollToTop()
        win.queue.select_row(max(args.row, 0))
        wait_until(lambda w=win: w.editor.canvas.has_image)
        if args.row < 0:
            win.queue.select_row(_typical_row(win, wait_until))
        wait(300)
        for size in ((1280, 800), (1920, 1080)) if mode == "light" else ((1280, 800),):
            win.resize(*size)
            win._size_docks()
            wait(400)
            name = f"main-{mode}-{size[0]}x{size[1]}.png"
            win.grab().save(str(args.out / name))
            shots.append(name)
        if mode == "light":
            shots += _history_and_keys_shots(win, args.out, wait, wait_until)
        win.close()
        wait(100)
    if args.age_source:
        theme.apply(app, "light")
        shots.append(_age_shot(args.age_source, tmp, args.out, wait, wait_until,
                               args.epochs, args.image_size))
    workers.stop_all()
    print("\n".join(str(args.out / s) for s in shots))
    return 0


def _typical_row(win, wait_until) -> int:  # noqa: ANN001
    """The highest-ranked of the top 40 whose named error is a few points off with 1-3
    flagged landmarks (the bad points and the model's estimates read clearly), else
    the first with 1-3 flagged landmarks, else the top."""
    m = win.queue.model
    fallback = None
    for row in range(min(40, m.rowCount())):
        r = m.row(row)
        if r is None:
            continue
        win.queue.select_row(row)
        wait_until(lambda: win.editor.canvas.has_image)
        few = 1 <= len(win.editor.state.flagged_order()) <= 3
        if few and r.issue == "points":
            return row
        if few and fallback is None:
            fallback = row
    return 0 if fallback is None else fallback


def _history_and_keys_shots(win, out: Path, wait, wait_until) -> list[str]:  # noqa: ANN001
    """The history dock after a fix made by keys (A, then two nudges), the version
    before it drawn on the image; and the keyboard help. The fix is undone after."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.dialogs.keys_dialog import KeysDialog, window_sections

    win.resize(1280, 800)
    win._size_docks()
    win.activateWindow()
    ed = win.editor
    ed.setFocus()
    n_before = len(ed.state.versions)
    QTest.keyClick(win, Qt.Key.Key_A)
    for _ in range(2):
        QTest.keyClick(win, Qt.Key.Key_Right)
    win._toggle_history()
    wait_until(lambda: win.history.tree.topLevelItemCount() > n_before)
    tree = win.history.tree
    for r in range(tree.topLevelItemCount()):  # the version the fix replaced
        item = tree.topLevelItem(r)
        if int(item.data(0, Qt.ItemDataRole.UserRole) or 0) == n_before:
            item.setSelected(True)
    wait(400)
    shots = ["history-1280x800.png"]
    win.grab().save(str(out / shots[0]))
    tree.clearSelection()
    for _ in range(2):  # the nudges undo as one step, then the accept
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    win._toggle_history()
    dlg = KeysDialog(window_sections(win), win)
    dlg.show()
    wait(300)
    shots.append("keys-help.png")
    dlg.grab().save(str(out / shots[-1]))
    dlg.close()
    return shots


def _age_shot(source: Path, tmp: Path, out: Path, wait, wait_until,  # noqa: ANN001
              epochs: int, image_size: int) -> str:
    import shutil

    from app.main_window import MainWindow
    from core.importer import import_source
    from core.project import Project

    subset = tmp / "ages"
    subset.mkdir()
    files = sorted(source.iterdir())
    for f in files[::max(1, len(files) // 150)][:150]:  # spread over the folder: all ages
        shutil.copy(f, subset / f.name)
    path = tmp / "ages.gumshoe"
    with Project.create(path) as p:
        import_source(p, subset, "auto", "age", noise="age-u:0.1")
    win = MainWindow()
    win.confirm_close = False
    win.resize(1280, 800)
    win.show()
    win.open_project(path)
    wait_until(lambda: win.editor.sample is not None)
    w = win.training.start(epochs=epochs, image_size=image_size)
    wait_until(lambda: w is not None and not w.isRunning(), 1_800_000)
    wait_until(lambda: win.queue.model.loaded and win.queue.model.run_id is not None)
    win.queue.table.scrollToTop()
    win.queue.select_row(0)
    wait_until(lambda: win.editor.canvas.has_image)
    win._size_docks()
    wait(400)
    name = "age-editor-1280x800.png"
    win.grab().save(str(out / name))
    win.close()
    return name


if __name__ == "__main__":
    sys.exit(main())
