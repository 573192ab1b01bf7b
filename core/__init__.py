"""Gumshoe's engine: everything that is not a widget. Never imports Qt."""

from __future__ import annotations

__version__ = "0.1.0"
