"""PyInstaller entry script: the same ``gumshoe`` command as the console script."""

from __future__ import annotations

import multiprocessing
import sys

from app.entry import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch DataLoader workers in a frozen app
    sys.exit(main())
