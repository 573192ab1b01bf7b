"""The landmark canvas: a QGraphicsView with the image, the stored landmarks
(coloured by the run's doubt, or as reviewed), the model's estimates as ghost
markers joined to the stored point, the schema's skeleton and, on request, an
older label version for comparison (:mod:`app.review.overlay` draws them).

Scene coordinates are original image pixels (the pixmap item is scaled when
the decoded image was downsized), so a drag yields sub-pixel image coordinates
directly. Dragging a marker moves it; dragging elsewhere pans; the wheel
zooms about the cursor. A zoom holds (window resizes, the next sample) until
``fit`` (F, or a double click on the background).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QCursor, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from app import theme
from app.review.overlay import LandmarkOverlay, Marker


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
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
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
        self.overlay = LandmarkOverlay(self.scene(), self._hover)
        self.names: tuple[str, ...] = ()
        self.texts: list[str] = []  # per landmark: the run's doubt as shown ("97 %")
        self._drag: int | None = None
        self._drag_moved = False
        self._image_rect = QRectF(0, 0, 1, 1)
        self.fitted = True  # fitted to the view until the user zooms
        self.editable = True
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
        if hasattr(self, "overlay"):
            self.overlay.apply_theme()
            self.overlay.restyle()

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
        # room around the image, so that a zoom keeps any point under the cursor and a
        # pan can bring any corner to the middle (the scroll bars are off: drag to pan)
        margin = 1.0 * max(w, h)
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

    # the label as drawn (the overlay's state)
    @property
    def points(self) -> np.ndarray:
        return self.overlay.points

    @property
    def visibility(self) -> np.ndarray:
        return self.overlay.visibility

    @property
    def prediction(self) -> np.ndarray | None:
        return self.overlay.prediction

    @property
    def selected(self) -> int:
        return self.overlay.selected

    def set_landmarks(self, points: np.ndarray | None, names: tuple[str, ...] = (),
                      visibility: np.ndarray | None = None,
                      prediction: np.ndarray | None = None,
                      skeleton: Sequence[tuple[int, int]] = (), restyle: bool = True) -> None:
        """Show a sample's landmarks and the model's estimates (no selection, no marks;
        ``restyle`` False when :meth:`set_marks` follows at once)."""
        self._label.hide()
        self.names = names
        self.texts = []
        self.overlay.set_landmarks(points, visibility, prediction, skeleton, restyle)

    def set_marks(self, levels: Sequence[float | None], flagged: np.ndarray,
                  reviewed: np.ndarray, texts: Sequence[str]) -> None:
        """Colour levels (0-1), open flags, reviewed landmarks and their doubt texts."""
        self.texts = list(texts)
        self.overlay.set_marks(levels, flagged, reviewed)
        for i, m in enumerate(self.overlay.markers):
            tip = self._name(i)
            if i < len(self.texts) and self.texts[i]:
                tip += f"\nP(wrong) {self.texts[i]}" if "%" in self.texts[i] \
                    else f"\nresidual {self.texts[i]}"
            if self.overlay.reviewed[i]:
                tip += "\nreviewed"
            m.setToolTip(tip)

    def set_show_all_predictions(self, on: bool) -> None:
        self.overlay.show_all_predictions = on
        self.overlay.update_ghosts()

    def set_show_model(self, on: bool) -> None:
        """M: show or hide the model's estimates (ghosts and their links)."""
        self.overlay.show_model = on
        self.overlay.update_ghosts()

    def set_diff(self, points: np.ndarray | None, to: np.ndarray | None = None) -> None:
        self.overlay.set_diff(points, to)

    def set_point(self, i: int, x: float, y: float) -> None:
        self.overlay.set_point(i, x, y)

    def select(self, i: int) -> None:
        ov = self.overlay
        old, ov.selected = ov.selected, i
        for j in (old, i):
            if 0 <= j < len(ov.markers):
                ov.style(j)
        ov.update_ghosts()
        if old != i:
            self.selection_changed.emit(i)

    def marker_scene_pos(self, i: int) -> QPointF:
        return self.overlay.markers[i].pos()

    def _name(self, i: int) -> str:
        return self.names[i] if i < len(self.names) else f"landmark {i}"

    # ------------------------------------------------------------------ view
    def _fit_rect(self, r: QRectF) -> QRectF:
        m = 0.03 * max(r.width(), r.height())
        return r.adjusted(-m, -m, m, m)

    def _fit_scale(self, r: QRectF) -> float:
        """The view scale at which ``r`` (an image rectangle) fits the viewport."""
        f = self._fit_rect(r)
        vp = self.viewport().rect().adjusted(2, 2, -2, -2)  # fitInView keeps 2 px clear
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
        ms = self.overlay.markers
        if 0 <= i < len(ms) and ms[i].isVisible() and not self.fitted:
            self.ensureVisible(QRectF(ms[i].pos(), ms[i].pos()), margin, margin)

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
        if i < len(self.texts) and self.texts[i]:
            text += f"  {self.texts[i]}"
        self._label.setText(text)
        br = self._label.boundingRect()
        self._label_bg.setRect(br.adjusted(-4, -2, 4, 2))
        self._label.setPos(self.overlay.markers[i].pos())
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
