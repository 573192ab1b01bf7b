"""Work around a PySide6 refcount bug on Python < 3.12.

PySide6 6.12 returns ``None`` from void methods without taking a reference
(fine since Python 3.12 made ``None`` immortal, PEP 683). On Python 3.11 every
such call (``setPos``, ``setVisible``, ``setLine``...) takes one reference from
``None``; after some ten thousand calls the interpreter aborts with
"Fatal Python error: none_dealloc". Measured here: about 100 sample switches.

:func:`install` detects the leak and, if present, gives ``None`` a very large
reference count, which is what 3.12's immortality amounts to. It is a no-op on
3.12+ and on a PySide6 without the bug (pyproject excludes 6.12.0; this guard
covers an environment that installs it anyway). Called from ``run_gui`` and
the tests.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_BOOST = 1 << 60
_installed = False


def leaks_none() -> bool:
    from PySide6.QtCore import QPointF

    p = QPointF()
    before = sys.getrefcount(None)
    for _ in range(200):
        p.setX(1.0)
    return sys.getrefcount(None) - before <= -150


def install() -> bool:
    """Make ``None`` effectively immortal if this PySide6 leaks its references."""
    global _installed
    if _installed or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _installed
    if not leaks_none():
        return False
    refcnt = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is the first field
    refcnt.value += _BOOST
    _installed = True
    log.info("PySide6 leaks references to None on this Python; None made immortal")
    return True
