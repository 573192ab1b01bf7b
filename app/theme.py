"""A clean Fusion-based theme that follows the system's light or dark mode.

Colours live in two small palettes; ``resources/style.qss`` is filled from the
active one. Icons are monochrome SVGs in ``resources/icons`` drawn with
``currentColor`` and tinted to the palette's text colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICONS = RESOURCES / "icons"


@dataclass(frozen=True)
class Colors:
    dark: bool
    window: str
    panel: str
    base: str
    alt: str
    button: str
    hover: str
    border: str
    text: str
    muted: str
    accent: str
    accent_hover: str
    accent_soft: str
    # semantic colours for the editor and plots
    inlier: str
    outlier: str
    ghost: str
    skeleton: str
    reviewed: str  # a landmark an annotator set, accepted or confirmed
    diff: str  # an older label version drawn for comparison


LIGHT = Colors(False, "#f4f5f7", "#fbfbfc", "#ffffff", "#f6f7f9", "#ffffff", "#e9ecf2",
               "#d9dde4", "#1d2230", "#667085", "#2b5fd9", "#224fc0", "#d6e2fb",
               "#22a06b", "#e5484d", "#2b5fd9", "#f5f5f5", "#8e4ec6", "#f76b15")
DARK = Colors(True, "#17191e", "#1e2127", "#14161a", "#1b1e23", "#262a31", "#2d323b",
              "#353b45", "#e6e8ec", "#98a2b3", "#5b8cff", "#7aa2ff", "#27375c",
              "#3dd68c", "#ff6369", "#7aa2ff", "#e8e8e8", "#bf7af0", "#ff8b3e")

_current: Colors = LIGHT
_bound: list[tuple[object, str]] = []  # (QAction or button, icon name): re-tinted by apply()


def colors() -> Colors:
    return _current


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    try:
        return hints.colorScheme() == Qt.ColorScheme.Dark
    except AttributeError:  # pragma: no cover - Qt < 6.5
        return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def resolve(mode: str) -> Colors:
    if mode == "dark":
        return DARK
    if mode == "light":
        return LIGHT
    return DARK if system_is_dark() else LIGHT


def _palette(c: Colors) -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    p.setColor(role.Window, QColor(c.window))
    p.setColor(role.WindowText, QColor(c.text))
    p.setColor(role.Base, QColor(c.base))
    p.setColor(role.AlternateBase, QColor(c.alt))
    p.setColor(role.ToolTipBase, QColor(c.panel))
    p.setColor(role.ToolTipText, QColor(c.text))
    p.setColor(role.PlaceholderText, QColor(c.muted))
    p.setColor(role.Text, QColor(c.text))
    p.setColor(role.Button, QColor(c.button))
    p.setColor(role.ButtonText, QColor(c.text))
    p.setColor(role.BrightText, QColor("#ffffff"))
    p.setColor(role.Highlight, QColor(c.accent))
    p.setColor(role.HighlightedText, QColor("#ffffff"))
    p.setColor(role.Link, QColor(c.accent))
    p.setColor(role.Mid, QColor(c.border))
    p.setColor(role.Midlight, QColor(c.hover))
    p.setColor(role.Dark, QColor(c.border))
    for r in (role.Text, role.WindowText, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, QColor(c.muted))
    return p


def style_sheet(c: Colors) -> str:
    text = (RESOURCES / "style.qss").read_text(encoding="utf-8")
    for k, v in vars(c).items():
        if isinstance(v, str):
            text = text.replace("{" + k + "}", v)
    return text


def apply(app: QApplication, mode: str = "system") -> Colors:
    """Style ``app`` for ``mode`` (system, light or dark); returns the colours used."""
    global _current
    _current = resolve(mode)
    app.setStyle("Fusion")
    app.setPalette(_palette(_current))
    app.setStyleSheet(style_sheet(_current))
    _icon.cache_clear()
    _retint()
    try:
        import pyqtgraph as pg

        pg.setConfigOptions(antialias=True, background=_current.base, foreground=_current.muted)
    except ImportError:  # pragma: no cover
        pass
    for fn in list(_listeners):
        try:
            fn()  # type: ignore[operator]
        except RuntimeError:  # its widget is gone
            _listeners.remove(fn)
    return _current


def follow_system(app: QApplication, mode_getter) -> None:  # noqa: ANN001
    """Re-apply the theme when the system switches light/dark (mode 'system' only)."""
    hints = QGuiApplication.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(
            lambda *_: apply(app, "system") if mode_getter() == "system" else None)


@cache
def _icon(name: str, color: str) -> QIcon:
    path = ICONS / f"{name}.svg"
    if not path.exists():
        return QIcon()
    svg = path.read_text(encoding="utf-8").replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    icon = QIcon()
    for size in (16, 20, 24, 32, 48):
        pm = QPixmap(QSize(size, size))
        pm.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pm)
        renderer.render(painter)
        painter.end()
        icon.addPixmap(pm)
    return icon


def icon(name: str) -> QIcon:
    """A themed icon from resources/icons (empty icon if missing)."""
    return _icon(name, _current.text)


def bind_icon(obj: object, name: str) -> object:
    """Give a QAction or button the themed icon ``name`` and keep it in step with
    later theme changes; returns ``obj``."""
    obj.setIcon(icon(name))  # type: ignore[attr-defined]
    _bound[:] = [(o, n) for o, n in _bound if o is not obj]
    _bound.append((obj, name))
    return obj


_listeners: list[object] = []


def on_change(fn) -> None:  # noqa: ANN001
    """Call ``fn()`` after every later :func:`apply` (widgets that paint with colours)."""
    _listeners.append(fn)


def _retint() -> None:
    alive = []
    for obj, name in _bound:
        try:
            obj.setIcon(icon(name))  # type: ignore[attr-defined]
        except RuntimeError:  # the Qt object is gone
            continue
        alive.append((obj, name))
    _bound[:] = alive


def level_color(level: float) -> str:
    """Green (likely right) -> amber (the flag threshold, 0.5) -> red (likely wrong)
    for a 0-1 doubt level (:func:`app.review.scores.doubt_level`)."""
    p = min(max(level, 0.0), 1.0)
    stops = [(0.0, (34, 160, 107)), (0.5, (232, 160, 32)), (1.0, (229, 72, 77))]
    for (p0, c0), (p1, c1) in zip(stops[:-1], stops[1:], strict=True):
        if p <= p1:
            t = (p - p0) / (p1 - p0)
            r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#e5484d"


def app_icon() -> QIcon:
    return QIcon(str(ICONS / "gumshoe.svg"))
