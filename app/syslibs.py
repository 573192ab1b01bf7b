"""Check the system libraries Qt's window platform needs, before Qt is loaded.

PySide6's wheels bring Qt itself but not the X11 client libraries its ``xcb``
platform plugin links to. When one is missing, Qt aborts the process with a
message that names the wrong package (it says "xcb-cursor0" whatever is
missing). ``gumshoe`` calls :func:`platform_problem` first and prints one line
naming what is missing and the command that installs it instead.

Nothing here imports Qt: the check must run where Qt would abort.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping

# (shared object, Debian/Ubuntu package): what PySide6's libqxcb.so and
# libQt6XcbQpa.so.6 link to beyond glibc (read off `ldd` of both, Qt 6.11),
# the first ones being those a stock desktop install is known to lack.
XCB_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-image.so.0", "libxcb-image0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libxcb-util.so.1", "libxcb-util1"),
    ("libxcb-randr.so.0", "libxcb-randr0"),
    ("libxcb-shape.so.0", "libxcb-shape0"),
    ("libxcb-xkb.so.1", "libxcb-xkb1"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libxkbcommon.so.0", "libxkbcommon0"),
    ("libxcb-sync.so.1", "libxcb-sync1"),
    ("libxcb-xfixes.so.0", "libxcb-xfixes0"),
    ("libxcb-shm.so.0", "libxcb-shm0"),
    ("libxcb-render.so.0", "libxcb-render0"),
    ("libxcb.so.1", "libxcb1"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libX11.so.6", "libx11-6"),
    ("libEGL.so.1", "libegl1"),
    ("libGL.so.1", "libgl1"),
    ("libfontconfig.so.1", "libfontconfig1"),
    ("libdbus-1.so.3", "libdbus-1-3"),
    ("libglib-2.0.so.0", "libglib2.0-0"),
)


def loadable(soname: str) -> bool:
    """Whether the dynamic loader finds ``soname`` (the same search Qt's own load
    makes: LD_LIBRARY_PATH, the ld.so cache, the default folders)."""
    try:
        ctypes.CDLL(soname, mode=os.RTLD_LAZY | getattr(os, "RTLD_LOCAL", 0))
    except OSError:
        return False
    return True


def missing_libraries(libraries: Iterable[tuple[str, str]] = XCB_LIBRARIES,
                      found: Callable[[str], bool] = loadable) -> list[tuple[str, str]]:
    """The (shared object, package) pairs of ``libraries`` the loader cannot find."""
    return [(so, pkg) for so, pkg in libraries if not found(so)]


def uses_xcb(environ: Mapping[str, str]) -> bool:
    """Whether Qt will start on its X11 (xcb) platform in this environment."""
    if not sys.platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    # unset: Qt 6 takes Wayland in a Wayland session (and falls back to xcb)
    wayland = environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE") == "wayland"
    return not wayland


def install_hint(packages: list[str]) -> str:
    if shutil.which("apt-get") or shutil.which("apt"):
        return "install them with: sudo apt install " + " ".join(packages)
    return "install the packages that provide them (Debian/Ubuntu names: " + \
        " ".join(packages) + ")"


def platform_problem(environ: Mapping[str, str] | None = None,
                     libraries: Iterable[tuple[str, str]] | None = None) -> str | None:
    """One line saying why Qt's window platform cannot start here, or None
    (``libraries``: default :data:`XCB_LIBRARIES`)."""
    env = os.environ if environ is None else environ
    if not uses_xcb(env):
        return None
    missing = missing_libraries(XCB_LIBRARIES if libraries is None else libraries)
    if missing:
        names = ", ".join(so for so, _ in missing)
        return (f"gumshoe: the window cannot open: missing system libraries for Qt's X11 "
                f"platform ({names}); {install_hint([pkg for _, pkg in missing])}")
    if not env.get("DISPLAY"):
        return ("gumshoe: the window cannot open: no display (DISPLAY is not set); run it in "
                "a desktop session, or use the headless commands (gumshoe train, rank, "
                "export ...)")
    return None
