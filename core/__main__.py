"""``python -m core``: the headless command line (for GPU boxes without a display)."""

from __future__ import annotations

import sys

from core.cli.main import main

sys.exit(main())
