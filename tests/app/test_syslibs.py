"""The system-library check ``gumshoe`` makes before Qt is loaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from app import syslibs

REPO = Path(__file__).resolve().parents[2]
ABSENT = ("libgumshoe-absent-test.so.7", "libgumshoe-absent7")


def test_the_loader_finds_present_libraries_and_not_absent_ones():
    libs = (("libc.so.6", "libc6"), ABSENT)
    assert syslibs.missing_libraries(libs) == [ABSENT]


def test_which_platform_qt_will_use():
    assert syslibs.uses_xcb({}) is sys.platform.startswith("linux")
    assert syslibs.uses_xcb({"QT_QPA_PLATFORM": "xcb"}) is sys.platform.startswith("linux")
    assert not syslibs.uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert not syslibs.uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb"})
    assert not syslibs.uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})


def _gumshoe(env_changes: dict[str, str | None], prelude: str = "") -> subprocess.CompletedProcess:
    """The real ``gumshoe`` entry point (no arguments: the GUI) in a fresh process."""
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    code = (f"import sys\n{prelude}\nfrom app.entry import main\nrc = main([])\n"
            "print('qt loaded' if 'PySide6.QtGui' in sys.modules else 'qt not loaded')\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_missing_platform_library_is_named_in_one_line_before_qt_loads(tmp_path):
    """The check's list gets one library no system has: the command prints one line
    naming it and its package (and the install command), exits 1, and Qt is never
    loaded (without the check, Qt aborts the process)."""
    if not sys.platform.startswith("linux"):
        import pytest

        pytest.skip("Qt's xcb platform is Linux only")
    prelude = f"import app.syslibs as s\ns.XCB_LIBRARIES += ({ABSENT!r},)"
    res = _gumshoe({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":77",
                    "GUMSHOE_CONFIG_DIR": str(tmp_path / "c"),
                    "GUMSHOE_DATA_DIR": str(tmp_path / "d")}, prelude)
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert ABSENT[0] in lines[0] and ABSENT[1] in lines[0]
    if shutil.which("apt-get") or shutil.which("apt"):
        assert "sudo apt install" in lines[0]
    assert res.stdout.strip() == "qt not loaded"


def test_no_display_is_one_line_too(tmp_path):
    if not sys.platform.startswith("linux"):
        import pytest

        pytest.skip("Qt's xcb platform is Linux only")
    res = _gumshoe({"QT_QPA_PLATFORM": None, "DISPLAY": None, "WAYLAND_DISPLAY": None,
                    "GUMSHOE_CONFIG_DIR": str(tmp_path / "c"),
                    "GUMSHOE_DATA_DIR": str(tmp_path / "d")})
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gumshoe: the window cannot open"), res.stderr
    assert res.stdout.strip() == "qt not loaded"
