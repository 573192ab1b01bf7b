"""Static resources (icons, style sheets, schema files) shipped with Gumshoe."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def path(*parts: str) -> Path:
    """Absolute path of a file inside ``resources/``."""
    return ROOT.joinpath(*parts)
