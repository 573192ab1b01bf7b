"""The review queue as a lazy Qt table model over ``Project.queue``.

Rows are fetched by a background worker with its own project connection. A reset
(new filter, sort or scores) answers with the first page at once (at most three
SQL statements however big the project), then with the whole ordering as sample
ids (``Project.queue_ids``: the row count, and a snapshot that keeps the order
stable while the annotator edits); later pages are cut from the snapshot and read
with ``Project.queue_rows`` (one statement, each row's review status fresh), so a
deep page costs no ``OFFSET`` walk. Rows not loaded yet show a placeholder and
request their page; the most recent requests are served first, so the rows on
screen fill in while scrolling. Pages are kept in a bounded LRU cache.
"""

from __future__ import annotations

import queue
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from app import theme
from app.review import queue_worker
from app.review.queue_worker import QueueFilter, serve
from app.review.scores import doubt_level, doubt_text
from app.workers import Worker
from core.issues import ISSUE_TEXT
from core.project import QueueRow

MAX_PAGES = 300

COLUMNS = ("#", "Sample", "Split", "Status", "Score", "P(wrong)", "Likely error")
ERROR_COLUMN = 6
# the run's named error as the queue shows it (a few points off: the worst point's name)
ISSUE_SHORT = {"swap": "sides swapped", "shifted": "shifted/scaled",
               "other_person": "far from model", "many_points": "many points",
               "hard": "hard image"}
STATUS_LABELS = {"unreviewed": "to review", "confirmed": "confirmed", "fixed": "fixed",
                 "excluded": "excluded"}


# ------------------------------------------------------------------ the model


class QueueModel(QAbstractTableModel):
    reset_done = Signal()  # rows 0..PAGE are loaded and counts known
    page_loaded = Signal(int)
    counts_changed = Signal(dict)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._filter = QueueFilter()
        self._gen = 0
        self._loaded_gen = -1
        self._counted = False
        self._count = 0
        self._pages: OrderedDict[int, list[QueueRow]] = OrderedDict()
        self._pending: set[int] = set()
        self._requests: queue.Queue = queue.Queue()
        self._worker: Worker | None = None
        self._keypoints: tuple[str, ...] = ()
        self.task: str | None = None
        self.run_id: int | None = None
        self.run_method: str | None = None
        self.counts: dict[str, int] = {}
        self.path_prefix = ""  # the folder every path of the first page starts with
        # {sample id: kind} of the images the cache found missing, changed or unreadable
        self.image_problems: dict[int, str] = {}

    # ---------------------------------------------------------- lifecycle
    def set_project(self, path: str | Path | None, keypoints: tuple[str, ...] = (),
                    task: str | None = None) -> None:
        self.close()
        self._keypoints = keypoints
        self.task = task
        self.beginResetModel()
        self._count = 0
        self._pages.clear()
        self._pending.clear()
        self.endResetModel()
        if path is None:
            return
        self._requests = queue.Queue()
        self._worker = Worker(serve, self._requests, name="queue-pages", project_path=path)
        self._worker.progress.connect(self._on_reply)
        self._worker.start()
        self.refresh()

    def close(self) -> None:
        self._gen += 1  # replies still queued from the old worker are now stale
        self._loaded_gen = -2
        if self._worker is not None:
            self._worker.progress.disconnect(self._on_reply)
            self._worker.stop_and_join()
            self._worker.deleteLater()
            self._worker = None

    @property
    def keypoints(self) -> tuple[str, ...]:
        return self._keypoints

    @property
    def filter(self) -> QueueFilter:
        return self._filter

    def set_filter(self, flt: QueueFilter) -> None:
        if flt != self._filter:
            self._filter = flt
            self.refresh()

    def update_filter(self, **changes: Any) -> None:
        self.set_filter(replace(self._filter, **changes))

    def refresh(self) -> None:
        """Re-run the query (filters changed, new scores): the model resets when it returns."""
        if self._worker is None:
            return
        self._gen += 1
        self._requests.put(("reset", self._gen, self._filter))

    def refresh_counts(self) -> None:
        if self._worker is not None:
            self._requests.put(("counts",))

    @property
    def loaded(self) -> bool:
        return self._loaded_gen == self._gen

    @property
    def counted(self) -> bool:
        """The row count is final (the whole ordering has been read)."""
        return self.loaded and self._counted

    # ---------------------------------------------------------- replies (GUI thread)
    def _on_reply(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "counts":
            self.counts = msg[1]
            self.counts_changed.emit(self.counts)
            return
        if kind == "reset":
            _, gen, run_id, method, count, rows, counts, complete, problems = msg
            if gen != self._gen:
                return
            self._counted = complete
            self.image_problems = problems
            self.beginResetModel()
            self.run_id, self.run_method = run_id, method
            self.path_prefix = common_folder([r.path for r in rows])
            self._count = count
            self._pages = OrderedDict({0: rows})
            self._pending.clear()
            self._loaded_gen = gen
            self.endResetModel()
            self.counts = counts
            self.counts_changed.emit(counts)
            self.reset_done.emit()
            return
        if kind == "count":  # the whole ordering is known: the rows beyond the first page
            _, gen, count = msg
            if gen != self._loaded_gen:
                return
            self._counted = True
            if count == self._count:
                return
            if count > self._count:
                self.beginInsertRows(QModelIndex(), self._count, count - 1)
                self._count = count
                self.endInsertRows()
            else:
                self.beginRemoveRows(QModelIndex(), count, self._count - 1)
                self._count = count
                self.endRemoveRows()
            self.counts_changed.emit(self.counts)
            return
        if kind == "dropped":
            self._pending.discard(msg[2])
            return
        _, gen, page, rows = msg
        if gen != self._loaded_gen:
            return
        self._pending.discard(page)
        self._pages[page] = rows
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)
        first = page * queue_worker.PAGE
        last = min(first + len(rows), self._count) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))
        self.page_loaded.emit(page)

    # ---------------------------------------------------------- row access
    def row(self, r: int) -> QueueRow | None:
        """The row if loaded; otherwise requests its page and returns None."""
        if not 0 <= r < self._count:
            return None
        page, i = divmod(r, queue_worker.PAGE)
        rows = self._pages.get(page)
        if rows is None:
            self.request_page(page)
            return None
        self._pages.move_to_end(page)
        if i >= queue_worker.PAGE // 2 and (page + 1) * queue_worker.PAGE < self._count:
            self.request_page(page + 1)  # scrolling down: have the next page ready
        return rows[i] if i < len(rows) else None

    def request_page(self, page: int) -> None:
        if page in self._pages or page in self._pending or self._worker is None:
            return
        self._pending.add(page)
        self._requests.put(("page", self._loaded_gen, self._filter, self.run_id, page))

    def sample_id(self, r: int) -> int | None:
        row = self.row(r)
        return None if row is None else row.sample_id

    def find_row(self, sample_id: int) -> int | None:
        """Row of a sample among the loaded pages."""
        for page, rows in self._pages.items():
            for i, row in enumerate(rows):
                if row.sample_id == sample_id:
                    return page * queue_worker.PAGE + i
        return None

    def set_status(self, sample_id: int, status: str) -> None:
        """Show an edit's new status at once (the row keeps its place until refresh)."""
        for page, rows in self._pages.items():
            for i, row in enumerate(rows):
                if row.sample_id == sample_id:
                    rows[i] = replace(row, review_status=status)
                    r = page * queue_worker.PAGE + i
                    self.dataChanged.emit(self.index(r, 0), self.index(r, len(COLUMNS) - 1))
        self.refresh_counts()

    # ---------------------------------------------------------- Qt API
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            if section == ERROR_COLUMN and self.task == "age":
                return "Age → model"
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, c = index.row(), index.column()
        row = self.row(r)
        if role == Qt.ItemDataRole.DisplayRole:
            if c == 0:
                return str(r + 1)
            if row is None:
                return "…" if c == 1 else ""
            return self._display(row, c)
        if row is None:
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if c == 3:
                return QBrush(QColor(_status_color(row.review_status)))
            level = doubt_level(row.outlier_prob, row.score, self.run_method)
            if c in (4, 5) and level is not None:
                return QBrush(QColor(theme.level_color(level)))
            if c == ERROR_COLUMN and (level is None or level <= 0.5) and not row.issue:
                return QBrush(QColor(theme.colors().muted))  # not flagged: its worst point
        if role == Qt.ItemDataRole.TextAlignmentRole and c in (0, 4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{row.path}\nsample {row.sample_id}"
            if row.issue:
                tip += f"\nlikely error: {ISSUE_TEXT.get(row.issue, row.issue)}"
            if row.conflict:
                tip += "\nchanged in two copies that were merged: both versions are kept"
            if row.sample_id in self.image_problems:
                tip += (f"\nimage {self.image_problems[row.sample_id]} since import: "
                        "left out of training (gumshoe info lists these)")
            return tip
        if role == Qt.ItemDataRole.UserRole:
            return row.sample_id
        return None

    def _display(self, row: QueueRow, c: int) -> str:
        if c == 1:
            return display_path(row.path, self.path_prefix)
        if c == 2:
            return row.split
        if c == 3:
            text = STATUS_LABELS.get(row.review_status, row.review_status)
            if row.sample_id in self.image_problems:  # the column is narrow: a sign, the
                text = "✖ " + text  # tooltip says which problem
            return "⚠ " + text if row.conflict else text
        if c == 4:
            return "" if row.score is None else _fmt_score(row.score)
        if c == 5:
            return doubt_text(row.outlier_prob, row.score, self.run_method)
        if c == ERROR_COLUMN:
            if row.issue in ISSUE_SHORT:
                return ISSUE_SHORT[row.issue]
            if row.age is not None:
                return f"{row.age:g}" + ("" if row.predicted_age is None
                                         else f" → {row.predicted_age:.0f}")
            if row.worst_landmark is None:
                return ""
            name = (self._keypoints[row.worst_landmark]
                    if row.worst_landmark < len(self._keypoints) else str(row.worst_landmark))
            return name
        return ""


def _fmt_score(score: float) -> str:
    """Four significant digits at most, so a large log-odds fits the column."""
    a = abs(score)
    return f"{score:.0f}" if a >= 1000 else f"{score:.1f}" if a >= 100 else f"{score:.2f}"


def _status_color(status: str) -> str:
    c = theme.colors()
    return {"unreviewed": c.text, "confirmed": c.inlier, "fixed": c.reviewed,
            "excluded": c.muted}.get(status, c.text)


def common_folder(paths: list[str]) -> str:
    """The folder (ending in '/') that every path starts with, or ''."""
    if not paths:
        return ""
    first = paths[0]
    cut = first.rfind("/") + 1
    for p in paths[1:]:
        while cut and not p.startswith(first[:cut]):
            cut = first.rfind("/", 0, cut - 1) + 1
    return first[:cut]


def display_path(path: str, prefix: str) -> str:
    """What tells a sample apart: its path below the folder every row shares."""
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def score_color(prob: float) -> str:
    """Green (inlier) -> amber -> red (outlier) for an outlier probability."""
    return theme.level_color(prob)
