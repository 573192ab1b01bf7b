"""Small widget helpers shared by the panels."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

SCROLLBAR = 10  # the style sheet's scroll bar width


def scrolling(w: QWidget) -> QScrollArea:
    """A fixed-width side card in a frameless vertical scroll area, so its height
    never sets the window's minimum height."""
    area = QScrollArea()
    area.setWidget(w)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setFixedWidth(w.minimumWidth() + SCROLLBAR)
    area.setMinimumHeight(120)
    return area
