"""The queue dock: filters, per-status counts and the ranked table."""

from __future__ import annotations

import statistics
import time

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.review.queue_model import ERROR_COLUMN, QueueModel
from app.review.search import parse as parse_search
from core.issues import ISSUE_TEXT, ISSUES
from core.project import REVIEW_STATUSES, SPLITS

# header column -> the queue's sort key
SORT_COLUMNS = {0: "score", 1: "path", 2: "split", 3: "status", 4: "score", 5: "prob",
                6: "worst_landmark"}  # 6: the likely error (a few points off: the worst)


def search_help() -> str:
    from app.review import search

    return search.__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]


NOT_RANKED = "Not ranked yet: train a model to flag the labels that look wrong."
PACE_WINDOW = 20  # the last decisions the pace is taken from
PAUSE_S = 300.0  # a longer gap between two decisions is a pause, not the pace


def fmt_duration(s: float) -> str:
    """A rough duration: "~40 s", "~12 min", "~2 h 05 min"."""
    if s < 60:
        return f"~{max(1, round(s))} s"
    m = round(s / 60)
    return f"~{m} min" if m < 60 else f"~{m // 60} h {m % 60:02d} min"


STATUS_FILTERS = [("All", ()), ("To review", ("unreviewed",)),
                  ("Confirmed", ("confirmed",)), ("Fixed", ("fixed",)),
                  ("Excluded", ("excluded",))]


class QueuePanel(QWidget):
    sample_selected = Signal(int, int)  # sample_id, row
    train_requested = Signal()
    show_training_requested = Signal()
    batch_requested = Signal(list, str)  # sample ids, new review status

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QueueModel(self)
        self.model.modelAboutToBeReset.connect(self._remember_filter)
        self._want_row: int | None = None
        self.current_sample: int | None = None
        self._filter_changed = True
        self._last_filter = None
        self._review_times: list[float] = []
        self._training: tuple[bool, str] = (False, "")
        self._setup_ui()
        self.model.reset_done.connect(self._on_reset)
        self.model.page_loaded.connect(self._on_page)
        self.model.counts_changed.connect(self._on_counts)

    def _setup_ui(self) -> None:
        v = QVBoxLayout(self)
        v.setContentsMargins(8, 8, 8, 4)
        v.setSpacing(6)

        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search: path, status:fixed, p>0.8, point:nose_tip…")
        self.search.setToolTip(search_help())
        theme.bind_icon(self.search.addAction(theme.icon("search"),
                                              QLineEdit.ActionPosition.LeadingPosition), "search")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=250)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        grid.addWidget(self.search, 0, 0, 1, 3)
        self.search_note = QLabel("")
        self.search_note.setWordWrap(True)
        self.search_note.hide()
        grid.addWidget(self.search_note, 2, 0, 1, 3)

        self.status = QComboBox()
        for text, statuses in STATUS_FILTERS:
            self.status.addItem(text, statuses)
        self.status.currentIndexChanged.connect(
            lambda _i: self.model.update_filter(statuses=tuple(self.status.currentData())))
        grid.addWidget(self.status, 1, 0)

        self.split = QComboBox()
        self.split.addItem("All splits", None)
        for s in SPLITS:
            self.split.addItem(s, s)
        self.split.currentIndexChanged.connect(
            lambda _i: self.model.update_filter(split=self.split.currentData()))
        grid.addWidget(self.split, 1, 1)

        self.min_prob = QSpinBox()
        self.min_prob.setRange(0, 99)
        self.min_prob.setSingleStep(10)
        self.min_prob.setSpecialValueText("any P(wrong)")
        self.min_prob.setValue(0)
        self.min_prob.setPrefix("P(wrong) ≥ ")
        self.min_prob.setSuffix(" %")
        self.min_prob.setToolTip("Only samples the run thinks at least this likely to be "
                                 "labelled wrong (50 %: more likely wrong than right)")
        self.min_prob.valueChanged.connect(self._on_min_prob)
        grid.addWidget(self.min_prob, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        v.addLayout(grid)

        row = QHBoxLayout()
        self.counts = QLabel("")
        self.counts.setProperty("role", "muted")
        self.counts.setWordWrap(True)
        row.addWidget(self.counts, 1)
        self.refresh_btn = QToolButton()
        theme.bind_icon(self.refresh_btn, "refresh")
        self.refresh_btn.setToolTip("Re-rank by the latest scores")
        self.refresh_btn.setAutoRaise(True)
        self.refresh_btn.clicked.connect(self.model.refresh)
        row.addWidget(self.refresh_btn)
        v.addLayout(row)

        self.banner = QFrame()
        self.banner.setProperty("role", "card")
        bl = QHBoxLayout(self.banner)
        bl.setContentsMargins(10, 8, 10, 8)
        self.banner_text = QLabel(NOT_RANKED)
        self.banner_text.setWordWrap(True)
        bl.addWidget(self.banner_text, 1)
        self.train_btn = QPushButton("Train now")
        self.train_btn.setProperty("primary", True)
        self.train_btn.clicked.connect(self.train_requested.emit)
        bl.addWidget(self.train_btn)
        self.follow_btn = QPushButton("Show")
        self.follow_btn.setToolTip("Show the run's live curves")
        self.follow_btn.clicked.connect(self.show_training_requested.emit)
        self.follow_btn.hide()
        bl.addWidget(self.follow_btn)
        self.banner.hide()
        v.addWidget(self.banner)

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # Shift/Ctrl+click select many rows: the right-click menu reviews them at once
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._row_menu)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        # the middle goes: a long path keeps its start and its file name in view
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        hh = self.table.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setMinimumSectionSize(36)
        fm = self.table.fontMetrics()
        bold = QFont(hh.font())
        bold.setBold(True)
        hfm = QFontMetrics(bold)

        def fits(*texts: str) -> int:  # the widest of the texts and the header, padded
            return max(max(fm.horizontalAdvance(t) for t in texts),
                       hfm.horizontalAdvance(texts[0])) + 18

        for col, w in ((0, fits("#", "000")), (2, fits("Split", "train")),
                       (3, fits("Status", "⚠ to review")), (4, fits("Score", "-00.00")),
                       (5, fits("P(wrong)", "> 99 %")),
                       (ERROR_COLUMN, fits("Likely error", "mouth_inner_2"))):
            self.table.setColumnWidth(col, w)
        # rank, split and the raw score: off by default (the header's menu shows them)
        for col in (0, 2, 4):
            hh.setSectionHidden(col, True)
        hh.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        hh.customContextMenuRequested.connect(self._header_menu)
        # a click on a header sorts by that column; again: the other way
        hh.setSectionsClickable(True)
        hh.setSortIndicatorShown(True)
        hh.setSortIndicator(-1, Qt.SortOrder.DescendingOrder)
        hh.sectionClicked.connect(self._sort_by)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        v.addWidget(self.table, 1)

    def _header_menu(self, pos) -> None:  # noqa: ANN001
        hh = self.table.horizontalHeader()
        menu = QMenu(self)
        for col in range(1, self.model.columnCount()):
            a = menu.addAction(self.model.headerData(col, Qt.Orientation.Horizontal))
            a.setCheckable(True)
            a.setChecked(not hh.isSectionHidden(col))
            a.toggled.connect(lambda on, c=col: hh.setSectionHidden(c, not on))
        menu.exec(hh.mapToGlobal(pos))

    def _apply_search(self) -> None:
        res = parse_search(self.search.text(), self.model.keypoints, ISSUES)
        f = res.fields
        self.search_note.setText("Ignored: " + "; ".join(res.errors) if res.errors else "")
        self.search_note.setVisible(bool(res.errors))
        self.search_note.setStyleSheet(f"color: {theme.colors().outlier}")
        self.model.update_filter(search=f.get("search", ""), q_statuses=f.get("statuses", ()),
                                 q_min_prob=f.get("min_prob"), q_max_prob=f.get("max_prob"),
                                 q_split=f.get("split"), landmark=f.get("landmark"),
                                 issue=f.get("issue"), conflicts=f.get("conflicts", False))

    def _sort_by(self, col: int) -> None:
        key = SORT_COLUMNS.get(col, "score")
        flt = self.model.filter
        if flt.sort == key:
            descending = not flt.descending
        else:  # text columns start A-Z, numbers highest first
            descending = key in ("score", "prob")
        self.table.horizontalHeader().setSortIndicator(
            col, Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder)
        self.model.update_filter(sort=key, descending=descending)

    def selected_samples(self) -> list[int]:
        """The sample ids of the selected rows (loaded ones), in row order."""
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [sid for sid in (self.model.sample_id(r) for r in rows) if sid is not None]

    def _row_menu(self, pos) -> None:  # noqa: ANN001
        ids = self.selected_samples()
        if not ids:
            return
        n = len(ids)
        what = f"{n} samples" if n > 1 else "this sample"
        menu = QMenu(self)
        for text, status in ((f"Confirm {what}: label is right", "confirmed"),
                             (f"Exclude {what}", "excluded"),
                             (f"Back to review: {what}", "unreviewed")):
            a = menu.addAction(text)
            a.triggered.connect(lambda _=False, s=status, ids=ids: self.batch_requested.emit(ids, s))
        menu.addSeparator()
        current = self.model.row(self.current_row())
        if current is not None and current.worst_landmark is not None:
            name = self.model.keypoints[current.worst_landmark] \
                if current.worst_landmark < len(self.model.keypoints) \
                else str(current.worst_landmark)
            worst = menu.addAction(f"Show the samples whose worst point is {name}")
            worst.triggered.connect(lambda: self.search.setText(f"point:{name}"))
        if current is not None and current.issue:
            issue = current.issue
            same = menu.addAction(f"Show the samples the run calls "
                                  f"'{ISSUE_TEXT.get(issue, issue)}'")
            same.triggered.connect(lambda: self.search.setText(f"issue:{issue}"))
        paths = [self.model.row(r).path for r in sorted(
            i.row() for i in self.table.selectionModel().selectedRows())
            if self.model.row(r) is not None]
        copy = menu.addAction("Copy path" + ("s" if n > 1 else ""))
        copy.triggered.connect(lambda: QApplication.clipboard().setText("\n".join(paths)))
        self._menu = menu  # tests reach the open menu
        menu.exec(self.table.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------ state
    def forget_selection(self) -> None:
        """Another project: select its top when it loads (sample ids mean nothing there)."""
        self.current_sample = None
        self._want_row = None
        self._filter_changed = True
        sm = self.table.selectionModel()
        sm.blockSignals(True)
        sm.clear()
        sm.blockSignals(False)

    def _remember_filter(self) -> None:
        flt = self.model.filter
        if flt != self._last_filter:
            self._filter_changed = True
            self._last_filter = flt

    def _on_min_prob(self, value: int) -> None:
        self.model.update_filter(min_prob=None if value <= 0 else value / 100.0)

    def note_review(self) -> None:
        """An annotator's decision just now (for the pace behind the time left)."""
        self._review_times.append(time.monotonic())
        del self._review_times[:-PACE_WINDOW - 1]

    def seconds_per_review(self) -> float | None:
        """The annotator's recent pace: the median time between decisions, pauses
        over :data:`PAUSE_S` left out; None until there are three decisions."""
        t = self._review_times
        gaps = [b - a for a, b in zip(t[:-1], t[1:], strict=True) if b - a <= PAUSE_S]
        return statistics.median(gaps) if len(gaps) >= 2 else None

    def _on_counts(self, counts: dict) -> None:
        total = sum(counts.get(s, 0) for s in REVIEW_STATUSES)
        for i, (text, statuses) in enumerate(STATUS_FILTERS):
            n = total if not statuses else sum(counts.get(s, 0) for s in statuses)
            self.status.setItemText(i, f"{text} ({n})")
        done = total - counts.get("unreviewed", 0)
        lines = [f"{self.model.rowCount()} shown · {done} of {total} reviewed "
                 f"({counts.get('fixed', 0)} fixed, {counts.get('excluded', 0)} excluded)"]
        if "flagged" in counts:
            flagged, left = counts["flagged"], counts["flagged_left"]
            line = f"flagged: {flagged - left} of {flagged} reviewed, {left} left"
            pace = self.seconds_per_review()
            if left and pace is not None:
                line += f" · {fmt_duration(left * pace)} at your pace"
            lines.append(line)
        lines.append(f"ranked by run {self.model.run_id} ({self.model.run_method})"
                     if self.model.run_id is not None else "no scores yet: train to rank")
        self.counts.setText("\n".join(lines))

    def set_training(self, running: bool, who: str = "") -> None:
        """Someone trains this project (``who``: "run 3 (deepgum) by another process
        (pid 812 on lab-2)"): no second run from here; the banner names it."""
        self._training = (running, who)
        self.train_btn.setEnabled(not running)
        self.train_btn.setVisible(not running)
        self.follow_btn.setVisible(running)
        self.banner_text.setText(
            f"Training: {who}. The queue re-ranks each time its scores land." if running
            else NOT_RANKED)
        self._update_banner()

    def _update_banner(self) -> None:
        running = self._training[0]
        self.banner.setVisible(running or (self.model.run_id is None
                                           and self.model.rowCount() > 0))

    def _on_reset(self) -> None:
        """After a filter change select the top row; after a re-rank keep the sample
        being edited (select it if it is on the first page, else leave the editor alone)."""
        self._on_counts(self.model.counts)
        self._update_banner()
        filter_changed, self._filter_changed = self._filter_changed, False
        if not self.model.rowCount():
            return
        row = None if self.current_sample is None else self.model.find_row(self.current_sample)
        if row is not None:
            self.select_row(row)
        elif filter_changed or self.current_sample is None:
            self.select_row(0)

    def _on_page(self, _page: int) -> None:
        if self._want_row is not None and self.model.sample_id(self._want_row) is not None:
            self.select_row(self._want_row)

    def current_row(self) -> int:
        idx = self.table.selectionModel().currentIndex()
        return idx.row() if idx.isValid() else -1

    def select_row(self, row: int) -> None:
        if not 0 <= row < self.model.rowCount():
            return
        sid = self.model.sample_id(row)
        if sid is None:  # page on its way: select when it lands
            self._want_row = row
            return
        self._want_row = None
        self.current_sample = sid
        idx = self.model.index(row, 1)
        sm = self.table.selectionModel()
        if sm.currentIndex().row() == row:
            self.sample_selected.emit(sid, row)
        else:
            sm.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect
                               | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(idx)

    def _on_current(self, current, _previous) -> None:  # noqa: ANN001
        if not current.isValid():
            return
        sid = self.model.sample_id(current.row())
        if sid is None:
            self._want_row = current.row()
            return
        self.current_sample = sid
        self.sample_selected.emit(sid, current.row())

    def follow(self, sample_id: int) -> None:
        """Select the row of a sample the editor shows (e.g. after an undo), quietly."""
        if sample_id == self.current_sample:
            return
        row = self.model.find_row(sample_id)
        self.current_sample = sample_id
        if row is None:
            return
        sm = self.table.selectionModel()
        sm.blockSignals(True)
        sm.setCurrentIndex(self.model.index(row, 1),
                           QItemSelectionModel.SelectionFlag.ClearAndSelect
                           | QItemSelectionModel.SelectionFlag.Rows)
        sm.blockSignals(False)
        self.table.viewport().update()
        self.table.scrollTo(self.model.index(row, 1))

    def step(self, delta: int) -> None:
        row = self.current_row()
        self.select_row(max(0, min(self.model.rowCount() - 1, row + delta)))

    def neighbours(self, row: int, n: int = 2) -> list[int]:
        out = []
        for r in (row + 1, row - 1, *range(row + 2, row + n + 1)):
            sid = self.model.sample_id(r) if 0 <= r < self.model.rowCount() else None
            if sid is not None:
                out.append(sid)
        return out
