"""The graphics items drawn over the image: one marker per landmark, the model's
estimate (a dashed *ghost* with a dotted link to the stored point), the schema's
skeleton, and a *diff* (another label version as small squares with a line to
where the point is now).

Items are pooled and reused from one sample to the next (same schema), so a
switch only moves and restyles them. Markers, ghosts and diff squares ignore
the view transform: they keep their size on screen at any zoom.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsRectItem,
    QGraphicsScene,
)

from app import theme

RADIUS = 5.0


class Marker(QGraphicsEllipseItem):
    """One stored landmark; tells ``on_hover(index or -1)`` when the mouse is over it."""

    def __init__(self, index: int, on_hover: Callable[[int], None]) -> None:
        super().__init__(-RADIUS, -RADIUS, 2 * RADIUS, 2 * RADIUS)
        self.index = index
        self._on_hover = on_hover
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setAcceptHoverEvents(True)
        self.setZValue(10)
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def hoverEnterEvent(self, event) -> None:  # noqa: ANN001
        self._on_hover(self.index)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:  # noqa: ANN001
        self._on_hover(-1)
        super().hoverLeaveEvent(event)


def _finite(p: np.ndarray) -> bool:
    return bool(np.isfinite(p).all())


def _cosmetic(color: QColor, width: float, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color)
    pen.setWidthF(width)
    pen.setCosmetic(True)
    pen.setStyle(style)
    return pen


class LandmarkOverlay:
    """The landmark items of one scene, and the state they draw."""

    def __init__(self, scene: QGraphicsScene, on_hover: Callable[[int], None]) -> None:
        self.scene = scene
        self._on_hover = on_hover
        self.markers: list[Marker] = []
        self._ghosts: list[QGraphicsEllipseItem] = []
        self._links: list[QGraphicsLineItem] = []
        self._diff_marks: list[QGraphicsRectItem] = []
        self._diff_lines: list[QGraphicsLineItem] = []
        self._bones: list[tuple[int, int, QGraphicsLineItem]] = []
        self._bones_key: tuple = ((), 0)
        self.points = np.zeros((0, 2))
        self.visibility = np.zeros(0, dtype=np.int8)
        self.prediction: np.ndarray | None = None
        self._predicted = np.zeros(0, dtype=bool)
        self.levels: list[float | None] = []
        self.flagged = np.zeros(0, dtype=bool)  # open flags: the run doubts, nobody reviewed
        self.reviewed = np.zeros(0, dtype=bool)
        self.diff: np.ndarray | None = None  # (K, 2) another version's points
        self.diff_to: np.ndarray | None = None  # (K, 2) a second version (None: the label)
        self.selected = -1
        self.show_all_predictions = False  # else: flagged landmarks and the selected one
        self.show_model = True  # M: the model's estimates at all
        self.apply_theme()

    # ------------------------------------------------------------------ content
    def set_landmarks(self, points: np.ndarray | None, visibility: np.ndarray | None,
                      prediction: np.ndarray | None,
                      skeleton: Sequence[tuple[int, int]] = (), restyle: bool = True) -> None:
        """The label and the model's estimates; ``restyle`` False when :meth:`set_marks`
        follows at once (it restyles every marker anyway)."""
        self.selected = -1
        self.points = np.zeros((0, 2)) if points is None else np.array(points, dtype=np.float64)
        k = len(self.points)
        vis = np.full(k, 2, np.int8) if visibility is None else np.asarray(visibility, np.int8)
        self.visibility = np.where(np.isfinite(self.points).all(axis=1), vis, 0).astype(np.int8)
        self.prediction = None if prediction is None else np.array(prediction, dtype=np.float64)
        p = self.prediction
        self._predicted = (np.zeros(k, dtype=bool) if p is None or p.ndim != 2 or len(p) < k
                           else np.isfinite(p[:k]).all(axis=1))
        self.levels = [None] * k
        self.flagged = np.zeros(k, dtype=bool)
        self.reviewed = np.zeros(k, dtype=bool)
        self.diff = self.diff_to = None
        self._pool(k)
        self._set_bones(skeleton if points is not None else (), k)
        for i in range(k):
            if self._predicted[i]:
                self._ghosts[i].setPos(QPointF(*self.prediction[i]))
            self.place(i)
        if restyle:
            self.restyle()

    def set_marks(self, levels: Sequence[float | None], flagged: np.ndarray,
                  reviewed: np.ndarray) -> None:
        k = len(self.points)
        self.levels = list(levels)[:k] + [None] * max(0, k - len(levels))
        self.flagged = np.asarray(flagged, dtype=bool)[:k]
        self.reviewed = np.asarray(reviewed, dtype=bool)[:k]
        self.restyle()

    def predicted(self, i: int) -> bool:
        return bool(i < len(self._predicted) and self._predicted[i])

    def _pool(self, k: int) -> None:
        """Exactly ``k`` markers, ghosts, links and diff items in the scene."""
        while len(self.markers) < k:
            i = len(self.markers)
            g = QGraphicsEllipseItem(-6, -6, 12, 12)  # large enough to find on a busy photo
            g.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            g.setZValue(5)
            link = QGraphicsLineItem()
            link.setZValue(4)
            d = QGraphicsRectItem(-4, -4, 8, 8)
            d.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            d.setZValue(7)
            dl = QGraphicsLineItem()
            dl.setZValue(6)
            m = Marker(i, self._on_hover)
            for item in (g, link, d, dl, m):
                self.scene.addItem(item)
            d.hide()
            dl.hide()
            self._ghosts.append(g)
            self._links.append(link)
            self._diff_marks.append(d)
            self._diff_lines.append(dl)
            self.markers.append(m)
        while len(self.markers) > k:
            for item in (self.markers.pop(), self._ghosts.pop(), self._links.pop(),
                         self._diff_marks.pop(), self._diff_lines.pop()):
                self.scene.removeItem(item)
        self.apply_theme()

    def _set_bones(self, skeleton: Sequence[tuple[int, int]], k: int) -> None:
        key = (tuple(skeleton), k)
        if key == self._bones_key:
            return
        self._bones_key = key
        for _a, _b, line in self._bones:
            self.scene.removeItem(line)
        self._bones = []
        for a, b in skeleton:
            if a < k and b < k:
                line = QGraphicsLineItem()
                line.setZValue(2)
                self.scene.addItem(line)
                self._bones.append((a, b, line))
        self.apply_theme()

    # ------------------------------------------------------------------ style
    def apply_theme(self) -> None:
        c = theme.colors()
        bone = QColor(c.skeleton)
        bone.setAlpha(150)
        bone_pen = _cosmetic(bone, 1.5)
        ghost_pen = _cosmetic(QColor(c.ghost), 2.0, Qt.PenStyle.DashLine)
        ghost_fill = QColor(c.ghost)
        ghost_fill.setAlpha(70)  # a tinted disc reads on dark and light backgrounds alike
        link_pen = _cosmetic(QColor(c.ghost), 1.6, Qt.PenStyle.DotLine)
        diff_pen = _cosmetic(QColor(c.diff), 1.8)
        for _a, _b, line in self._bones:
            line.setPen(bone_pen)
        for g in self._ghosts:
            g.setPen(ghost_pen)
            g.setBrush(QBrush(ghost_fill))
        for link in self._links:
            link.setPen(link_pen)
        for d in self._diff_marks:
            d.setPen(diff_pen)
            d.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        for dl in self._diff_lines:
            dl.setPen(_cosmetic(QColor(c.diff), 1.4, Qt.PenStyle.DashLine))

    def color(self, i: int) -> QColor:
        """The marker's fill: reviewed, else by the run's doubt, else the accent."""
        c = theme.colors()
        if i < len(self.reviewed) and self.reviewed[i]:
            return QColor(c.reviewed)
        level = self.levels[i] if i < len(self.levels) else None
        return QColor(theme.level_color(level) if level is not None else c.accent)

    def style(self, i: int) -> None:
        m = self.markers[i]
        fill = self.color(i)
        selected = i == self.selected
        occluded = i < len(self.visibility) and self.visibility[i] == 1
        pen = QPen(QColor("#ffd24a") if selected else QColor("#ffffff"))
        pen.setWidthF(2.5 if selected else 1.2)
        if occluded:  # a ring in the point's colour: labelled, but hidden in the image
            pen = QPen(QColor("#ffd24a") if selected else fill)
            pen.setWidthF(3.0)
            pen.setStyle(Qt.PenStyle.DashLine if not selected else Qt.PenStyle.SolidLine)
            m.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        else:
            m.setBrush(QBrush(fill))
        m.setPen(pen)
        flagged = i < len(self.flagged) and self.flagged[i]
        r = RADIUS + (2 if selected else 0) + (1 if flagged else 0)
        m.setRect(-r, -r, 2 * r, 2 * r)

    def restyle(self) -> None:
        for i in range(len(self.markers)):
            self.style(i)
        self.update_ghosts()

    # ------------------------------------------------------------------ geometry
    def place(self, i: int) -> None:
        p = self.points[i]
        ok = _finite(p) and bool(self.visibility[i] > 0)
        m = self.markers[i]
        m.setVisible(ok)
        if ok:
            m.setPos(QPointF(p[0], p[1]))
        if ok and self.predicted(i):
            px, py = self.prediction[i]
            self._links[i].setLine(p[0], p[1], px, py)
        for a, b, line in self._bones:
            if a == i or b == i:
                pa, pb = self.points[a], self.points[b]
                vis = _finite(pa) and _finite(pb) and bool(self.visibility[a] > 0) \
                    and bool(self.visibility[b] > 0)
                line.setVisible(vis)
                if vis:
                    line.setLine(pa[0], pa[1], pb[0], pb[1])
        self._place_diff(i)

    def set_point(self, i: int, x: float, y: float) -> None:
        self.points[i] = (x, y)
        if self.visibility[i] == 0:
            self.visibility[i] = 2
        self.place(i)

    def ghost_shown(self, i: int) -> bool:
        return self.show_model and self.predicted(i) and (
            self.show_all_predictions or i == self.selected
            or bool(i < len(self.flagged) and self.flagged[i]))

    def update_ghosts(self) -> None:
        """Ghosts and their links for open flags and the selected landmark (all of them
        with ``show_all_predictions``; none with ``show_model`` off)."""
        for i, (g, link) in enumerate(zip(self._ghosts, self._links, strict=True)):
            show = self.ghost_shown(i)
            g.setVisible(show)
            link.setVisible(show and self.markers[i].isVisible())

    # ------------------------------------------------------------------ diff
    def set_diff(self, points: np.ndarray | None, to: np.ndarray | None = None) -> None:
        """Draw ``points`` (another version, (K, 2)) as squares with a dashed line to
        where the landmark is in ``to`` (a second version; None: the shown label). The
        squares and lines appear only where the two differ. ``points`` None: off."""
        self.diff = None if points is None else np.array(points, dtype=np.float64)
        self.diff_to = None if to is None or points is None else np.array(to, dtype=np.float64)
        for i in range(len(self.markers)):
            self._place_diff(i)

    def _place_diff(self, i: int) -> None:
        if i >= len(self._diff_marks):
            return
        d, dl = self._diff_marks[i], self._diff_lines[i]
        old = None if self.diff is None or i >= len(self.diff) else self.diff[i]
        now = self.points[i] if self.diff_to is None or i >= len(self.diff_to) \
            else self.diff_to[i]
        if old is None or not _finite(old):
            d.hide()
            dl.hide()
            return
        same = _finite(now) and float(np.hypot(*(old - now))) < 1e-6
        d.setPos(QPointF(old[0], old[1]))
        d.setVisible(bool(not same))
        dl.setVisible(bool(not same and _finite(now)))
        if not same and _finite(now):
            dl.setLine(old[0], old[1], now[0], now[1])

    def diff_shown(self) -> list[int]:
        return [i for i, d in enumerate(self._diff_marks) if d.isVisible()]
