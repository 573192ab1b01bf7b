"""Live training plots: one pyqtgraph item per series, updated with setData."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGridLayout, QWidget

from app import theme


class Series:
    """Growing x/y arrays behind one PlotDataItem."""

    def __init__(self, item: pg.PlotDataItem) -> None:
        self.item = item
        self.x: list[float] = []
        self.y: list[float] = []

    def append(self, x: float, y: float | None) -> None:
        if y is None or not np.isfinite(y):
            return
        self.x.append(float(x))
        self.y.append(float(y))

    def replace_from(self, x: float) -> None:
        """Drop points at or after ``x`` (an epoch re-sent after resume)."""
        while self.x and self.x[-1] >= x:
            self.x.pop()
            self.y.pop()

    def flush(self) -> None:
        self.item.setData(np.asarray(self.x), np.asarray(self.y))

    def clear(self) -> None:
        self.x.clear()
        self.y.clear()
        self.item.setData([], [])

    def __len__(self) -> int:
        return len(self.x)


class TrainingPlots(QWidget):
    """Loss, validation error, inlier fraction, responsibility histogram, throughput."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(6)
        c = theme.colors()
        self.plots: dict[str, pg.PlotWidget] = {}

        self._titles: dict[str, str] = {}
        self._values: dict[str, str] = {}  # the latest value, shown beside the title

        def plot(name: str, title: str, xlabel: str) -> pg.PlotWidget:
            w = pg.PlotWidget()
            self._titles[name] = title
            pi = w.getPlotItem()
            pi.showGrid(x=True, y=True, alpha=0.15)
            w.setToolTip(xlabel)
            pi.setMenuEnabled(False)
            pi.hideButtons()
            # narrow enough that a window made smaller (1920 -> 1280) can shrink before the
            # plots reflow into fewer columns
            w.setMinimumSize(60, 110)
            self.plots[name] = w
            return w

        def pen(color: str, width: float = 2.0, style=None) -> pg.mkPen:  # noqa: ANN001
            return pg.mkPen(color, width=width) if style is None else \
                pg.mkPen(color, width=width, style=style)

        p = plot("loss", "Loss", "training loss per epoch (thin: per batch)")
        self.batch_loss = Series(p.plot(pen=pen(c.muted, 1.0), name="batches"))
        self.loss = Series(p.plot(pen=pen(c.accent), symbol="o", symbolSize=5,
                                  symbolBrush=c.accent, symbolPen=None, name="epoch"))
        p = plot("val", "Val error", "validation error per epoch")
        self.val = Series(p.plot(pen=pen(c.outlier), symbol="o", symbolSize=5,
                                 symbolBrush=c.outlier, symbolPen=None))
        p = plot("inlier", "Inliers", "inlier fraction per EM step")
        p.setYRange(0, 1, padding=0.02)
        self.inlier = Series(p.plot(pen=pen(c.inlier), symbol="o", symbolSize=4,
                                    symbolBrush=c.inlier, symbolPen=None))
        p = plot("hist", "r histogram", "responsibilities r of the training units (1 = inlier)")
        p.setXRange(0, 1, padding=0.02)
        p.getAxis("bottom").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]])
        self.hist = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=c.accent_soft,
                                    pen=pen(c.accent, 1.2))
        p.addItem(self.hist)
        p = plot("speed", "Images/s", "training throughput per epoch")
        self.speed = Series(p.plot(pen=pen(c.ghost), symbol="o", symbolSize=5,
                                   symbolBrush=c.ghost, symbolPen=None))
        self.series = {"batch_loss": self.batch_loss, "loss": self.loss, "val": self.val,
                       "inlier": self.inlier, "speed": self.speed}
        self._columns = 0
        self.reflow(5)
        self.apply_theme()
        theme.on_change(self.apply_theme)

    def apply_theme(self) -> None:
        c = theme.colors()
        for name, w in self.plots.items():
            w.setBackground(c.base)
            pi = w.getPlotItem()
            self._set_title(name)
            for axis in ("bottom", "left"):
                pi.getAxis(axis).setTextPen(c.muted)
                pi.getAxis(axis).setPen(c.border)

    def _set_title(self, name: str) -> None:
        c = theme.colors()
        value = self._values.get(name, "")
        self.plots[name].getPlotItem().setTitle(
            f"<span style='color:{c.muted};font-size:9pt'>{self._titles[name]}</span>"
            + (f"&nbsp;<span style='color:{c.text};font-size:9pt;font-weight:600'>"
               f"{value}</span>" if value else ""))

    def set_value(self, name: str, value: str) -> None:
        """Show the latest value of plot ``name`` beside its title ('' hides it)."""
        if self._values.get(name, "") != value:
            self._values[name] = value
            self._set_title(name)

    def value(self, name: str) -> str:
        return self._values.get(name, "")

    def reflow(self, columns: int) -> None:
        """Lay the plots out in ``columns`` columns; with 4, the throughput plot (the
        least needed) is hidden so the others keep room for their titles and axes."""
        if columns == self._columns:
            return
        self._columns = columns
        shown = [w for name, w in self.plots.items() if columns != 4 or name != "speed"]
        for w in self.plots.values():
            self._grid.removeWidget(w)
            w.setVisible(w in shown)
        for i, w in enumerate(shown):
            self._grid.addWidget(w, i // columns, i % columns)
        for col in range(5):  # equal widths (a plot shown again came back at its minimum)
            self._grid.setColumnStretch(col, 1 if col < columns else 0)

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        w = event.size().width()
        self.reflow(5 if w >= 760 else 4 if w >= 480 else 3)
        super().resizeEvent(event)

    def set_histogram(self, edges: np.ndarray, counts: np.ndarray) -> None:
        self.hist.setData(np.asarray(edges, dtype=float), np.asarray(counts, dtype=float))

    def clear(self) -> None:
        for s in self.series.values():
            s.clear()
        self.hist.setData([], [])
        for name in list(self._values):
            self.set_value(name, "")

    def flush(self) -> None:
        for s in self.series.values():
            s.flush()

    def point_counts(self) -> dict[str, int]:
        out = {k: len(s) for k, s in self.series.items()}
        x, _y = self.hist.getData()
        out["hist"] = 0 if x is None else len(x) - 1
        return out
