"""Run a module (``-m pytest ...``) with every Qt binding made unimportable, as
if PySide6 were not installed: proves that core/ and tests/core need no Qt."""

from __future__ import annotations

import importlib.abc
import runpy
import sys

BLOCKED = {"PySide6", "shiboken6", "PyQt5", "PyQt6", "pyqtgraph", "superqt", "qtpy", "pytestqt"}


class _NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (Qt is blocked here)", name=name)
        return None


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        sys.exit("usage: without_qt.py -m MODULE [ARGS...]")
    for mod in list(sys.modules):
        if mod.partition(".")[0] in BLOCKED:
            del sys.modules[mod]
    sys.meta_path.insert(0, _NoQt())
    module, sys.argv = sys.argv[2], sys.argv[2:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
