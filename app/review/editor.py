"""The sample editor: header bar, canvas, side card, and the keys.

What it shows comes from :func:`app.review.state.load_state` (the sample, its
label versions and the run's scores, a few small queries); the edits are in
:class:`app.review.commands.EditCommands`. On arrival the worst open flag (the
landmark the queue names) is selected; Tab / Shift+Tab walk the flagged
landmarks worst first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.review.canvas import LandmarkCanvas
from app.review.commands import NUDGE_PX, NUDGE_SHIFT_PX, EditCommands
from app.review.history import EditHistory
from app.review.images import ImageCache
from app.review.keys import ACTIONS, EDITOR_ONLY, NUDGES
from app.review.side_card import STATUS_LABELS, SideCard, role_label
from app.review.state import SampleState, load_state
from app.widgets import scrolling
from core.project import ProjectError


class EditorWidget(QWidget, EditCommands):
    sample_shown = Signal(int)
    edited = Signal(int, str)  # sample_id, new review status
    next_requested = Signal()
    previous_requested = Signal()
    history_changed = Signal()  # the shown sample's history has a new entry
    message = Signal(str)  # a short note for the status bar

    def __init__(self, annotator: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._annotator = annotator
        self.project: Any = None
        self.schema: Any = None
        self.run_id: int | None = None  # the queue's run (None: the latest scored)
        self.run_method: str | None = None
        self.state: SampleState | None = None
        self.history = EditHistory()
        self._file_undo: tuple[int, int] | None = None
        self.images = ImageCache(self)
        self.images.loaded.connect(self._on_image)
        self.images.failed.connect(self._on_image_failed)
        self.auto_advance = True
        self.last_switch_ms = 0.0
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._setup_actions()
        self._setup_ui()
        self._update_enabled()
        theme.on_change(self._retheme)

    def _retheme(self) -> None:
        self.canvas.apply_theme()
        self.side.retheme()
        if self.state is not None:
            self._show_state(self.canvas.selected)

    # ------------------------------------------------------------------ setup
    def _setup_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        slots: dict[str, Callable[[], None]] = {
            "previous": self.previous_requested.emit, "next": self.next_requested.emit,
            "next_flag": lambda: self.step_flag(+1), "previous_flag": lambda: self.step_flag(-1),
            "next_point": lambda: self.step_point(+1),
            "previous_point": lambda: self.step_point(-1),
            "accept": self.accept_selected, "accept_all": self.accept_flagged,
            "accept_every": self.accept_every,
            "confirm": self.confirm, "exclude": self.exclude,
            "visibility": self.cycle_visibility, "swap": self.swap_sides,
            "undo": self.undo, "redo": self.redo, "fit": lambda: self.canvas.fit(),
            "zoom_in": lambda: self.canvas.zoom(1.25), "zoom_out": lambda: self.canvas.zoom(0.8),
            "model": lambda: self.canvas.set_show_model(
                self.actions_by_name["model"].isChecked()),
            "predictions": lambda: self.canvas.set_show_all_predictions(
                self.actions_by_name["predictions"].isChecked()),
        }
        for name, (dx, dy) in NUDGES.items():
            # (*_: the triggered signal passes 'checked', which must not become dx)
            slots[name] = lambda *_, dx=dx, dy=dy: self.nudge(dx * NUDGE_PX, dy * NUDGE_PX)
            slots[name + "_10"] = lambda *_, dx=dx, dy=dy: self.nudge(dx * NUDGE_SHIFT_PX,
                                                                      dy * NUDGE_SHIFT_PX)
        for name, text, icon, keys, tip in ACTIONS:
            a = QAction(text, self)
            if icon:
                theme.bind_icon(a, icon)
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut
                                 if name in EDITOR_ONLY else Qt.ShortcutContext.WindowShortcut)
            shown = ", ".join(k for k in keys if k != "Backtab")
            a.setToolTip(f"{tip or text} ({shown})" if keys else (tip or text))
            a.setObjectName(name)
            a.triggered.connect(slots[name])
            self.actions_by_name[name] = a
            self.addAction(a)
        self.actions_by_name["model"].setCheckable(True)
        self.actions_by_name["model"].setChecked(True)
        self.actions_by_name["predictions"].setCheckable(True)

    def _tool(self, name: str, text: bool = True) -> QToolButton:
        b = QToolButton()
        b.setDefaultAction(self.actions_by_name[name])
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon if text
                             else Qt.ToolButtonStyle.ToolButtonIconOnly)
        b.setAutoRaise(True)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # a window made narrower can shrink: resizeEvent then drops the texts
        b.setMinimumWidth(28)
        return b

    def _setup_ui(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)

        bar = QFrame()
        bar.setProperty("role", "bar")
        hb = QHBoxLayout(bar)
        hb.setContentsMargins(10, 6, 10, 6)
        hb.setSpacing(4)
        self._nav_tools = [self._tool("previous"), self._tool("next")]
        for b in self._nav_tools:
            hb.addWidget(b)
        self.title = role_label("No sample", "title")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        hb.addSpacing(8)
        hb.addWidget(self.title, 1)
        self.status_chip = role_label("", "chip")
        hb.addWidget(self.status_chip)
        hb.addSpacing(8)
        self._text_tools = []
        for name in ("accept", "accept_all", "confirm", "exclude"):
            self._text_tools.append(self._tool(name))
            hb.addWidget(self._text_tools[-1])
        hb.addSpacing(6)
        for name in ("visibility", "swap", "model", "undo", "redo", "fit"):
            hb.addWidget(self._tool(name, text=False))
        root.addWidget(bar)

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(0)
        self.canvas = LandmarkCanvas()
        self.canvas.landmark_moved.connect(self.move_landmark)
        self.canvas.selection_changed.connect(self._on_selection)
        self.canvas.hovered.connect(self._on_hover)
        body.addWidget(self.canvas, 1)
        self.side = SideCard()
        self.side.point_clicked.connect(self._select)
        self.side.age_entered.connect(self.set_age)
        self.side.use_model_age.connect(self.accept_selected)
        self.side.fix_requested.connect(self._fix)
        self.side.can_fix = self._can_fix
        body.addWidget(scrolling(self.side))
        root.addLayout(body, 1)
        self.setFocusProxy(self.canvas)

        self.hint = role_label("", "muted")
        self.hint.setContentsMargins(10, 4, 10, 4)
        self.hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.hint.setText(self._default_hint())
        root.addWidget(self.hint)

    def _default_hint(self) -> str:
        if self.schema is not None and self.schema.task == "age":
            return ("J/K next/previous · type the age and press Enter · A use the model's "
                    "age · C right · X exclude · Ctrl+Z undo")
        return ("J/K next · Tab flagged point · A accept · Shift+A all flagged · C right · "
                "X exclude · arrows nudge · V occluded · S swap · H history · F1 all keys")

    # the age spin box's and the side card's widgets, for tests and the main window
    @property
    def age_spin(self):  # noqa: ANN201
        return self.side.age_spin

    @property
    def side_stack(self):  # noqa: ANN201
        return self.side.stack

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        compact = event.size().width() < 1020
        style = (Qt.ToolButtonStyle.ToolButtonIconOnly if compact
                 else Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for b in self._text_tools + self._nav_tools:
            b.setToolButtonStyle(style)
        super().resizeEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: ANN001
        spin = self.side.age_spin
        if (spin.hasFocus() or spin.isAncestorOf(self.focusWidget())) and \
                event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.set_age(spin.value())
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------ project
    def set_project(self, project: Any) -> None:
        self.project = project
        if project is not None:
            self.images.start()
        self.schema = None if project is None else project.schema
        self.history.clear()
        self._file_undo = None
        self.state = None
        self.run_id = self.run_method = None
        self.canvas.set_landmarks(None)
        self.canvas.set_image(None, size=(1, 1))
        self.show_diff(None)
        self.title.setText("No sample" if project is None else "Select a sample in the queue")
        self.title.setToolTip("")
        self.status_chip.setText("")
        is_age = self.schema is not None and self.schema.task == "age"
        self.side.set_age_mode(is_age)
        self.side.clear()
        self.canvas.editable = not is_age
        self.hint.setText(self._default_hint())
        self._update_enabled()

    def close_project(self) -> None:
        self.images.close()
        self.set_project(None)

    @property
    def annotator(self) -> str:
        return self._annotator()

    # the shown sample, for the main window and tests
    @property
    def sample(self) -> Any:
        return None if self.state is None else self.state.sample

    @property
    def label(self) -> Any:
        return None if self.state is None else self.state.label

    def set_run(self, run_id: int | None, method: str | None) -> None:
        """The run whose scores the editor shows (the queue's)."""
        self.run_id, self.run_method = run_id, method

    # ------------------------------------------------------------------ showing
    def prefetch(self, sample_ids: list[int]) -> None:
        for sid in sample_ids:
            with contextlib.suppress(ProjectError):  # a vanished neighbour is no error
                self.images.request(self.project.sample(sid).image_path)

    def _load(self, sample_id: int) -> SampleState:
        k = 0 if self.schema is None else self.schema.n_keypoints
        return load_state(self.project, sample_id, self.run_id, self.run_method, k)

    def show_sample(self, sample_id: int, prefetch: list[int] | None = None) -> None:
        if self.project is None:
            return
        t0 = time.perf_counter()
        self.hint.setText(self._default_hint())  # drop a previous sample's image error
        self.state = st = self._load(sample_id)
        s = st.sample
        hit = self.images.get(s.image_path)
        size = (s.width, s.height)
        if hit is None:
            self.canvas.set_image(None, size=size)
        else:
            self.canvas.set_image(hit[0], hit[1], size=size)
        self._diff = (None, None)
        self.canvas.set_diff(None)
        self._show_state(st.first_selection(), new_sample=True)
        self.canvas.ensure_visible(self.canvas.selected)
        if prefetch:
            self.prefetch(prefetch)
        self.last_switch_ms = (time.perf_counter() - t0) * 1000
        self.sample_shown.emit(sample_id)

    def _reload(self, select: int | None = None) -> None:
        """Read the shown sample again (after an edit) and redraw it."""
        if self.state is None:
            return
        self.state = self._load(self.state.sample.id)
        self._show_state(self.canvas.selected if select is None else select)

    def _show_state(self, select: int, new_sample: bool = False) -> None:
        st = self.state
        lab, sc = st.label, st.scores
        names = () if self.schema is None else self.schema.keypoints
        if lab.points is not None and self.schema is not None:
            prediction = None if sc is None else sc.prediction
            if new_sample or self.canvas.points.shape != lab.points.shape:
                self.canvas.set_landmarks(lab.points, names, lab.visibility, prediction,
                                          self.schema.skeleton, restyle=False)
            else:  # same sample: keep the items and the diff, redraw the label
                self.canvas.overlay.set_landmarks(lab.points, lab.visibility, prediction,
                                                  self.schema.skeleton, restyle=False)
                self.canvas.overlay.set_diff(*self._diff)
            k = len(lab.points)
            levels = [None if sc is None else sc.level(i) for i in range(k)]
            texts = ["" if sc is None else sc.text(i) for i in range(k)]
            self.canvas.set_marks(levels, st.open_flags, st.reviewed, texts)
            self.canvas.overlay.selected = -1
            self.canvas.select(select if 0 <= select < k else -1)
        else:
            self.canvas.set_landmarks(None)
        self._update_header()
        self.side.show_state(st, names, self.canvas.selected, self._run_name())
        self._update_enabled()

    _diff: tuple[Any, Any] = (None, None)

    def show_diff(self, points: Any, to: Any = None) -> None:
        """Draw another version's landmarks against the shown label, or against a second
        version ``to`` (None: off)."""
        self._diff = (points, to)
        self.canvas.set_diff(points, to)

    def _on_image(self, path: str) -> None:
        st = self.state
        if st is not None and str(st.sample.image_path) == path:
            hit = self.images.get(path)
            if hit is not None:
                self.canvas.set_image(hit[0], hit[1], size=(st.sample.width, st.sample.height))

    def _on_image_failed(self, path: str, error: str) -> None:
        if self.state is not None and str(self.state.sample.image_path) == path:
            self.hint.setText(f"Cannot show the image: {error}")

    def _update_header(self) -> None:
        st = self.state
        if st is None:
            self.status_chip.setText("")
            return
        self.title.setText(st.sample.path)
        self.title.setToolTip(str(st.sample.image_path))
        self.status_chip.setText(STATUS_LABELS.get(st.status, st.status))

    def _run_name(self) -> str:
        sc = None if self.state is None else self.state.scores
        if sc is None or sc.run_id is None:
            return ""
        return f"from run {sc.run_id}" + (f" ({sc.method})" if sc.method else "")

    def _on_selection(self, i: int) -> None:
        if self.state is not None:
            names = () if self.schema is None else self.schema.keypoints
            self.side.show_selected(self.state, names, i)
        self._update_enabled()

    def _can_fix(self, action: str) -> bool:
        """Whether the side card's suggested fix applies to the shown sample."""
        st = self.state
        if st is None:
            return False
        sc = st.scores
        if action == "swap":
            return st.label.points is not None and bool(self.schema.flip_pairs)
        if action == "accept_all":
            return bool(st.flagged_order())
        return sc is not None and sc.prediction is not None

    def _fix(self, action: str) -> None:
        """The side card's suggestion, clicked: what its key does."""
        if action and self._can_fix(action):
            self.actions_by_name[action].trigger()
            self.canvas.setFocus()

    def _select(self, i: int) -> None:
        self.canvas.select(i)
        self.canvas.ensure_visible(i)
        self.canvas.setFocus()

    def step_flag(self, delta: int) -> None:
        """Tab / Shift+Tab: the next / previous flagged landmark, worst first (the open
        flags; once every flag is reviewed, all of them)."""
        st = self.state
        if st is None:
            return
        order = st.flagged_order() or st.flagged_order(only_open=False)
        if not order:
            self.message.emit("The run flags no landmark on this sample")
            return
        cur = self.canvas.selected
        if cur in order:
            i = order[(order.index(cur) + delta) % len(order)]
        else:
            i = order[0] if delta > 0 else order[-1]
        self._select(i)

    def step_point(self, delta: int) -> None:
        """N / Shift+N: the next / previous landmark in the schema's order."""
        st = self.state
        if st is None or not st.n_keypoints:
            return
        k = st.n_keypoints
        cur = self.canvas.selected
        self._select((cur + delta) % k if cur >= 0 else (0 if delta > 0 else k - 1))

    def _on_hover(self, i: int) -> None:
        if i < 0:
            self.hint.setText(self._default_hint())
            return
        texts = self.canvas.texts
        extra = f" · {texts[i]}" if i < len(texts) and texts[i] else ""
        self.hint.setText(f"{self.canvas._name(i)} (#{i}){extra}")

    def _update_enabled(self) -> None:
        st = self.state
        has = st is not None
        is_lm = self.schema is not None and self.schema.task == "landmarks"
        sc = None if st is None else st.scores
        sel = self.canvas.selected
        a = self.actions_by_name
        has_pred = sc is not None and sc.prediction is not None
        a["accept"].setEnabled(has and has_pred)
        a["accept_all"].setEnabled(has and is_lm and bool(st.flagged_order()))
        a["accept_every"].setEnabled(has and is_lm and has_pred)
        for name in ("confirm", "exclude"):
            a[name].setEnabled(has)
        for name in ("next_flag", "previous_flag", "next_point", "previous_point"):
            a[name].setEnabled(has and is_lm)
        a["visibility"].setEnabled(has and is_lm and sel >= 0)
        a["swap"].setEnabled(has and is_lm and bool(self.schema.flip_pairs))
        for name in EDITOR_ONLY:
            a[name].setEnabled(has and is_lm and sel >= 0)
        a["undo"].setEnabled(has or self.history.can_undo())
        a["redo"].setEnabled(self.history.can_redo())
