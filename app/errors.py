"""One error sink: uncaught exceptions (GUI thread and other threads) and worker
failures end in the log file and in one dialog that names it; warnings go to
the log only (a dialog per warning would train users to click it away).

``setup_logging`` is called once, from ``run_gui``; ``install`` hooks
``sys.excepthook``, ``threading.excepthook`` and ``warnings``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

log = logging.getLogger("gumshoe")

_log_file: Path | None = None
_sink: ErrorSink | None = None


def setup_logging(folder: Path, level: int = logging.INFO) -> Path:
    """Configure logging once: a rotating file in ``folder`` plus stderr."""
    global _log_file
    if _log_file is not None:
        return _log_file
    folder.mkdir(parents=True, exist_ok=True)
    _log_file = folder / "gumshoe.log"
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    fh = logging.handlers.RotatingFileHandler(_log_file, maxBytes=2_000_000, backupCount=3,
                                              encoding="utf-8")
    fh.setFormatter(fmt)
    root.addHandler(fh)
    sh = logging.StreamHandler()
    sh.setLevel(logging.WARNING)
    sh.setFormatter(fmt)
    root.addHandler(sh)
    logging.captureWarnings(True)
    return _log_file


def log_file() -> Path | None:
    return _log_file


class ErrorSink(QObject):
    """Lives in the GUI thread; ``report`` may be called from any thread."""

    reported = Signal(str, str)  # title, details (queued to the GUI thread)

    def __init__(self, parent_widget: QWidget | None = None, show_dialogs: bool = True) -> None:
        super().__init__()
        self.parent_widget = parent_widget
        self.show_dialogs = show_dialogs
        self.history: list[tuple[str, str]] = []
        self._open: QMessageBox | None = None
        self.reported.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def report(self, title: str, details: str) -> None:
        log.error("%s\n%s", title, details)
        self.reported.emit(title, details)

    @Slot(str, str)
    def _show(self, title: str, details: str) -> None:
        self.history.append((title, details))
        if not self.show_dialogs or QApplication.instance() is None:
            return
        where = f"\n\nDetails are in the log file:\n{_log_file}" if _log_file else ""
        if self._open is not None and self._open.isVisible():  # one dialog at a time
            self._open.setDetailedText(self._open.detailedText() + "\n\n" + details)
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "Gumshoe: " + title,
                          title + where, QMessageBox.StandardButton.Ok, self.parent_widget)
        box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda *_: setattr(self, "_open", None))
        self._open = box
        box.show()


def sink() -> ErrorSink:
    global _sink
    if _sink is None:
        _sink = ErrorSink()
    return _sink


def set_sink(s: ErrorSink | None) -> None:
    global _sink
    _sink = s


def report(title: str, details: str = "") -> None:
    sink().report(title, details)


def _format(exc_type: type[BaseException], exc: BaseException,
            tb: TracebackType | None) -> str:
    return "".join(traceback.format_exception(exc_type, exc, tb))


def install() -> None:
    """Route uncaught exceptions (any thread) and warnings to the sink."""

    def excepthook(exc_type: type[BaseException], exc: BaseException,
                   tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        report(f"Unexpected error: {exc_type.__name__}: {exc}", _format(exc_type, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread else "thread"
        report(f"Error in {name}: {args.exc_type.__name__}: {args.exc_value}",
               _format(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = excepthook
    threading.excepthook = thread_hook
    logging.captureWarnings(True)  # warnings go to the log, not to a dialog
