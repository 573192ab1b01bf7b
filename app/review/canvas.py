"""The landmark canvas: a QGraphicsView with the image, the stored landmarks
(coloured by their own outlier score), the model's predictions as ghost markers
joined to the stored point, and the schema's skeleton.

Scene coordinates are original image pixels (the pixmap item is scaled when
the decoded image was downsized), so a drag yields sub-pixel image coordinates
directly. Markers ignore the view transform: they keep their size on screen
while zooming. Dragging a marker moves it; dragging elsewhere pans; the wheel
zooms about the cursor. A zoom holds (window resizes, the next sample) until
``fit`` (F, or a double click on the background).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QCursor, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from app import theme
from app.review.queue_model import score_color

RADIUS = 5.0


class Marker(QGraphicsEllipseItem):
    def __init__(self, index: int, radius: float = RADIUS) -> None:
        super().__init__(-radius, -radius, 2 * radius, 2 * radius)
        self.index = index
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setAcceptHoverEvents(True)
        self.setZValue(10)
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def hoverEnterEvent(self, event) -> None:  # noqa: ANN001
        view = self.scene().views()[0] if self.scene() and self.scene().views() else None
        if isinstance(view, LandmarkCanvas):
            view._hover(self.index)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:  # noqa: ANN001
        view = self.scene().views()[0] if self.scene() and self.scene().views() else None
        if isinstance(view, LandmarkCanvas):
            view._hover(-1)
        super().hoverLeaveEvent(event)


class LandmarkCanvas(QGraphicsView):
    landmark_moved = Signal(int, float, float)  # index, x, y in image pixels (on release)
    selection_changed = Signal(int)  # -1: none
    hovered = Signal(int)  # -1: none

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing
                            | QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setMinimumSize(200, 200)
        self._pixmap_item = QGraphicsPixmapItem()
        self._pixmap_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._pixmap_item.setZValue(0)
        # Labels put the centre of pixel i at coordinate i, so pixel i spans [i - 0.5, i + 0.5]
        # (at any decode scale, since the item is scaled about its origin).
        self._pixmap_item.setPos(-0.5, -0.5)
        self.scene().addItem(self._pixmap_item)
        self._frame = QGraphicsRectItem()
        self._frame.setZValue(-1)
        self.scene().addItem(self._frame)
        self._label = QGraphicsSimpleTextItem()
        self._label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self._label.setZValue(20)
        self._label.hide()
        self.scene().addItem(self._label)
        self._label_bg = QGraphicsRectItem(self._label)
        self._label_bg.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent)
        self._markers: list[Marker] = []
        self._ghosts: list[QGraphicsEllipseItem] = []
        self._links: list[QGraphicsLineItem] = []
        self._pred_ok: list[bool] = []
        self._bones: list[tuple[int, int, QGraphicsLineItem]] = []
        self._bones_key: tuple = ((), 0)
        self.points = np.zeros((0, 2))
        self.prediction: np.ndarray | None = None
        self.names: tuple[str, ...] = ()
        self.scores: list[float] | None = None
        self.probs: list[float] | None = None
        self.selected = -1
        self._drag: int | None = None
        self._drag_moved = False
        self._image_rect = QRectF(0, 0, 1, 1)
        self.fitted = True  # fitted to the view until the user zooms
        self.editable = True
        self.show_all_predictions = False  # else: flagged landmarks and the selected one
        self.apply_theme()

    # ------------------------------------------------------------------ content
    def apply_theme(self) -> None:
        c = theme.colors()
        self.setBackgroundBrush(QBrush(QColor("#101114" if c.dark else "#e7e9ee")))
        self._frame.setPen(QPen(Qt.PenStyle.NoPen))
        self._frame.setBrush(QBrush(QColor("#2a2d33" if c.dark else "#d0d4dc")))
        self._label.setBrush(QBrush(QColor("#ffffff")))
        self._label_bg.setBrush(QBrush(QColor(0, 0, 0, 170)))
        self._label_bg.setPen(QPen(Qt.PenStyle.NoPen))
        if hasattr(self, "_bones"):
            self._apply_pens()

    def set_image(self, pixmap: QPixmap | None, scale: float = 1.0,
                  size: tuple[int, int] | None = None) -> None:
        """Show ``pixmap`` (decoded at ``scale`` of the original); None: a placeholder
        of the original ``size`` (w, h) until the image arrives."""
        if pixmap is None:
            self._pixmap_item.setPixmap(QPixmap())
        else:
            self._pixmap_item.setPixmap(pixmap)
            self._pixmap_item.setScale(1.0 / scale)
        if size is not None:
            w, h = size
        elif pixmap is not None:
            w, h = pixmap.width() / scale, pixmap.height() / scale
        else:
            w, h = self._image_rect.width(), self._image_rect.height()
        rect = QRectF(-0.5, -0.5, float(w), float(h))
        changed = rect != self._image_rect
        old = self._image_rect
        self._image_rect = rect
        self._frame.setRect(rect)
        margin = 0.25 * max(w, h)
        self.scene().setSceneRect(rect.adjusted(-margin, -margin, margin, margin))
        if changed:
            if self.fitted:
                self.fit()
            else:  # zoomed: keep the zoom relative to the image, about the same spot
                rel = self.transform().m11() / max(self._fit_scale(old), 1e-9)
                centre = self.mapToScene(self.viewport().rect().center())
                u = (centre.x() - old.x()) / max(old.width(), 1e-9)
                v = (centre.y() - old.y()) / max(old.height(), 1e-9)
                s = rel * self._fit_scale(rect)
                self.setTransform(QTransform.fromScale(s, s))
                self.centerOn(rect.x() + u * rect.width(), rect.y() + v * rect.height())

    @property
    def has_image(self) -> bool:
        return not self._pixmap_item.pixmap().isNull()

    def set_landmarks(self, points: np.ndarray | None, names: tuple[str, ...] = (),
                      scores: list[float] | None = None, probs: list[float] | None = None,
                      prediction: np.ndarray | None = None,
                      skeleton: tuple[tuple[int, int], ...] = ()) -> None:
        """Show a sample's landmarks. The graphics items are kept and reused from one
        sample to the next (same schema), so a switch only moves and restyles them."""
        self._label.hide()
        self.selected = -1
        self.points = np.zeros((0, 2)) if points is None else np.array(points, dtype=np.float64)
        self.names, self.scores, self.probs = names, scores, probs
        self.prediction = None if prediction is None else np.array(prediction, dtype=np.float64)
        k = len(self.points)
        self._pool(k)
        self._set_bones(skeleton if points is not None else (), k)
        pred = self.prediction
        self._pred_ok = [pred is not None and i < len(pred) and bool(np.isfinite(pred[i]).all())
                         for i in range(k)]
        for i in range(k):
            if self._pred_ok[i]:
                self._ghosts[i].setPos(QPointF(*pred[i]))
                self._ghosts[i].setToolTip(f"{self._name(i)}: model's estimate")
            self._style_marker(i)
            self._place(i)
        self._update_ghosts()

    def _pool(self, k: int) -> None:
        """Exactly ``k`` markers, ghosts and links in the scene."""
        scene = self.scene()
        while len(self._markers) < k:
            i = len(self._markers)
            g = QGraphicsEllipseItem(-6, -6, 12, 12)  # large enough to find on a busy photo
            g.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            g.setZValue(5)
            link = QGraphicsLineItem()
            link.setZValue(4)
            m = Marker(i)
            for item in (g, link, m):
                scene.addItem(item)
            self._ghosts.append(g)
            self._links.append(link)
            self._markers.append(m)
        while len(self._markers) > k:
            for item in (self._markers.pop(), self._ghosts.pop(), self._links.pop()):
                scene.removeItem(item)
        self._apply_pens()

    def _set_bones(self, skeleton: tuple[tuple[int, int], ...], k: int) -> None:
        key = (tuple(skeleton), k)
        if key == self._bones_key:
            return
        self._bones_key = key
        for _a, _b, line in self._bones:
            self.scene().removeItem(line)
        self._bones = []
        for a, b in skeleton:
            if a < k and b < k:
                line = QGraphicsLineItem()
                line.setZValue(2)
                self.scene().addItem(line)
                self._bones.append((a, b, line))
        self._apply_pens()

    def _apply_pens(self) -> None:
        c = theme.colors()
        bone = QColor(c.skeleton)
        bone.setAlpha(150)
        bone_pen = QPen(bone)
        bone_pen.setCosmetic(True)
        bone_pen.setWidthF(1.5)
        ghost_pen = QPen(QColor(c.ghost))
        ghost_pen.setWidthF(2.0)
        ghost_pen.setStyle(Qt.PenStyle.DashLine)
        ghost_pen.setCosmetic(True)
        ghost_fill = QColor(c.ghost)
        ghost_fill.setAlpha(70)  # a tinted disc reads on dark and light backgrounds alike
        link_pen = QPen(QColor(c.ghost))
        link_pen.setWidthF(1.6)
        link_pen.setCosmetic(True)
        link_pen.setStyle(Qt.PenStyle.DotLine)
        for _a, _b, line in self._bones:
            line.setPen(bone_pen)
        for g in self._ghosts:
            g.setPen(ghost_pen)
            g.setBrush(QBrush(ghost_fill))
        for link in self._links:
            link.setPen(link_pen)

    def _name(self, i: int) -> str:
        return self.names[i] if i < len(self.names) else f"landmark {i}"

    def outlier_prob(self, i: int) -> float | None:
        if self.probs is not None and i < len(self.probs) and not math.isnan(self.probs[i]):
            return float(self.probs[i])
        if self.scores is not None and i < len(self.scores) and not math.isnan(self.scores[i]):
            return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, self.scores[i]))))
        return None

    def flagged(self) -> list[int]:
        """Landmarks whose label is more likely wrong than right and have a prediction."""
        out = []
        for i in range(len(self.points)):
            p = self.outlier_prob(i)
            if p is not None and p > 0.5 and self._pred_ok[i]:
                out.append(i)
        return out

    def _style_marker(self, i: int) -> None:
        m = self._markers[i]
        p = self.outlier_prob(i)
        fill = QColor(score_color(p) if p is not None else theme.colors().accent)
        pen = QPen(QColor("#ffffff"))
        pen.setWidthF(2.5 if i == self.selected else 1.2)
        if i == self.selected:
            pen.setColor(QColor("#ffd24a"))
        m.setPen(pen)
        m.setBrush(QBrush(fill))
        r = RADIUS + (2 if i == self.selected else 0) + (1 if p is not None and p > 0.5 else 0)
        m.setRect(-r, -r, 2 * r, 2 * r)
        tip = self._name(i)
        if self.scores is not None and i < len(self.scores) and not math.isnan(self.scores[i]):
            tip += f"\noutlier score {self.scores[i]:.2f}"
        if p is not None:
            tip += f"  (P(wrong) {p:.0%})"
        m.setToolTip(tip)

    def _place(self, i: int) -> None:
        x, y = self.points[i]
        ok = bool(np.isfinite([x, y]).all())
        m = self._markers[i]
        m.setVisible(ok)
        if ok:
            m.setPos(QPointF(x, y))
        if ok and self._pred_ok[i]:
            px, py = self.prediction[i]
            self._links[i].setLine(x, y, px, py)
        for a, b, line in self._bones:
            if a == i or b == i:
                pa, pb = self.points[a], self.points[b]
                vis = bool(np.isfinite(pa).all() and np.isfinite(pb).all())
                line.setVisible(vis)
                if vis:
                    line.setLine(pa[0], pa[1], pb[0], pb[1])

    def _update_ghosts(self) -> None:
        """Ghosts and their lines for flagged landmarks and the selected one (all of
        them when ``show_all_predictions``): a line from every point is clutter."""
        for i, (g, link) in enumerate(zip(self._ghosts, self._links, strict=True)):
            p = self.outlier_prob(i)
            show = self._pred_ok[i] and (self.show_all_predictions or i == self.selected
                                         or (p is not None and p > 0.5))
            g.setVisible(show)
            link.setVisible(show and bool(np.isfinite(self.points[i]).all()))

    def set_show_all_predictions(self, on: bool) -> None:
        self.show_all_predictions = on
        self._update_ghosts()

    def set_point(self, i: int, x: float, y: float) -> None:
        self.points[i] = (x, y)
        self._place(i)

    def select(self, i: int) -> None:
        old, self.selected = self.selected, i
        for j in (old, i):
            if 0 <= j < len(self._markers):
                self._style_marker(j)
        self._update_ghosts()
        if old != i:
            self.selection_changed.emit(i)

    def marker_scene_pos(self, i: int) -> QPointF:
        return self._markers[i].pos()

    # ------------------------------------------------------------------ view
    def _fit_rect(self, r: QRectF) -> QRectF:
        m = 0.03 * max(r.width(), r.height())
        return r.adjusted(-m, -m, m, m)

    def _fit_scale(self, r: QRectF) -> float:
        """The view scale at which ``r`` (an image rectangle) fits the viewport."""
        f = self._fit_rect(r)
        vp = self.viewport().rect()
        return min(vp.width() / max(f.width(), 1e-9), vp.height() / max(f.height(), 1e-9))

    def fit(self) -> None:
        """Fit the image to the view; it stays fitted (also on resize) until a zoom."""
        self.fitted = True
        self.fitInView(self._fit_rect(self._image_rect), Qt.AspectRatioMode.KeepAspectRatio)

    @property
    def zoom_factor(self) -> float:
        """The view scale relative to the fitted view (1: fitted)."""
        return self.transform().m11() / max(self._fit_scale(self._image_rect), 1e-9)

    def zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the scene point under ``anchor`` (viewport
        coordinates; default: the mouse if it is over the view, else the centre) where
        it is. The zoom holds (resizes, samples of the same size) until :meth:`fit`."""
        cur = self.transform().m11()
        factor = max(0.02 / cur, min(64.0 / cur, factor))
        if anchor is None:
            mouse = self.viewport().mapFromGlobal(QCursor.pos())
            inside = self.viewport().rect().contains(mouse) and self.underMouse()
            anchor = QPointF(mouse) if inside else QPointF(self.viewport().rect().center())
        before = self.viewportTransform().inverted()[0].map(anchor)
        self.fitted = False
        old = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.scale(factor, factor)
        self.setTransformationAnchor(old)
        # scroll so that the scene point is back under the anchor
        now = self.viewportTransform().map(before)
        dx, dy = now.x() - anchor.x(), now.y() - anchor.y()
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + round(dx))
        v.setValue(v.value() + round(dy))

    def ensure_visible(self, i: int, margin: int = 60) -> None:
        """Scroll (never zoom) so that landmark ``i`` is in view."""
        if 0 <= i < len(self._markers) and self._markers[i].isVisible() and not self.fitted:
            self.ensureVisible(QRectF(self._markers[i].pos(), self._markers[i].pos()),
                               margin, margin)

    def wheelEvent(self, event) -> None:  # noqa: ANN001
        delta = event.angleDelta().y()
        if delta:
            self.zoom(1.0015 ** delta, event.position())
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        if self.fitted:  # a zoomed view keeps its zoom when scroll bars come and go
            self.fit()

    def _hover(self, i: int) -> None:
        self.hovered.emit(i)
        if i < 0 or self._drag is not None:
            self._label.hide()
            return
        text = self._name(i)
        p = self.outlier_prob(i)
        if p is not None:
            text += f"  {p:.0%}"
        self._label.setText(text)
        br = self._label.boundingRect()
        self._label_bg.setRect(br.adjusted(-4, -2, 4, 2))
        self._label.setPos(self._markers[i].pos())
        # offset in screen pixels: the label ignores transformations
        self._label.setTransform(QTransform.fromTranslate(10, -br.height() - 8))
        self._label.show()

    def _marker_at(self, pos) -> int | None:  # noqa: ANN001
        for item in self.items(pos):
            if isinstance(item, Marker):
                return item.index
        return None

    def mousePressEvent(self, event) -> None:  # noqa: ANN001
        if event.button() == Qt.MouseButton.LeftButton:
            i = self._marker_at(event.position().toPoint())
            if i is not None:
                self.select(i)
                if self.editable:
                    self._drag, self._drag_moved = i, False
                    self._label.hide()
                    self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: ANN001
        if self._drag is not None:
            # sub-pixel: map the exact float position through the viewport transform
            p = self.viewportTransform().inverted()[0].map(event.position())
            self.set_point(self._drag, p.x(), p.y())
            self._drag_moved = True
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: ANN001
        if self._drag is not None and event.button() == Qt.MouseButton.LeftButton:
            i, moved = self._drag, self._drag_moved
            self._drag = None
            self.viewport().unsetCursor()
            if moved:
                x, y = self.points[i]
                self.landmark_moved.emit(i, float(x), float(y))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: ANN001
        if self._marker_at(event.position().toPoint()) is None:
            self.fit()
        super().mouseDoubleClickEvent(event)
