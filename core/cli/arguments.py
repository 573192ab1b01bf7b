"""Argument types shared by several commands: checked while the command line is
parsed, so a bad value stops before any work (no cache built, no run created)."""

from __future__ import annotations

import argparse

from core.images import check_image_size
from core.training.config import AUTO_EPOCHS_TEXT


def image_size(text: str) -> int:
    """``--image-size``: a multiple of 32 from 32 to 1024."""
    try:
        return check_image_size(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if text.strip().lstrip("-").isdigit()
                                         else f"{text!r} is not a whole number") from None


EPOCHS_HELP = f"a number, or auto (default): {AUTO_EPOCHS_TEXT}"


def epochs(text: str) -> int:
    """``--epochs``: a whole number from 1, or ``auto`` (0: see auto_epochs)."""
    if text.strip().lower() == "auto":
        return 0
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or auto") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} epochs: at least 1 (or auto)")
    return n
