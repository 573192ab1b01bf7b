"""Argument types shared by several commands: checked while the command line is
parsed, so a bad value stops before any work (no cache built, no run created)."""

from __future__ import annotations

import argparse

from core.images import check_image_size


def image_size(text: str) -> int:
    """``--image-size``: a multiple of 32 from 32 to 1024."""
    try:
        return check_image_size(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if text.strip().lstrip("-").isdigit()
                                         else f"{text!r} is not a whole number") from None
