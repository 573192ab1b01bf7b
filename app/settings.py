"""One settings factory over QSettings (INI format).

Every reader/writer of user settings calls :func:`settings`; tests point the
folder at a temporary directory with :func:`configure` (or the
``GUMSHOE_CONFIG_DIR`` environment variable), so no test touches the user's
real settings file.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import platformdirs
from PySide6.QtCore import QSettings

APP_NAME = "gumshoe"
THEMES = ("system", "light", "dark")
DEVICES = ("auto", "cpu", "cuda")
MAX_RECENT = 10
EPOCHS_KEY = "training/epoch_count"  # 0 = automatic (since automatic epochs)

_folder: Path | None = None


def configure(folder: str | os.PathLike[str] | None) -> None:
    """Use ``folder`` for the settings file (None: back to the default)."""
    global _folder
    _folder = None if folder is None else Path(folder)


def settings_dir() -> Path:
    if _folder is not None:
        return _folder
    env = os.environ.get("GUMSHOE_CONFIG_DIR")
    return Path(env) if env else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Per-user data folder (the demo project, logs)."""
    env = os.environ.get("GUMSHOE_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    env = os.environ.get("GUMSHOE_DATA_DIR")
    if env:
        return Path(env) / "logs"
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def os_account() -> str:
    """The OS account's login name (the environment, else the password database)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no name anywhere (a container's odd uid)
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


class Settings:
    """Typed access to the INI file. Cheap to create; create one where needed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.q = QSettings(str(path), QSettings.Format.IniFormat)

    def _str(self, key: str, default: str) -> str:
        v = self.q.value(key, default)
        return default if v is None else str(v)

    def _int(self, key: str, default: int) -> int:
        try:
            return int(self.q.value(key, default))
        except (TypeError, ValueError):
            return default

    # annotator ----------------------------------------------------------------
    @property
    def annotator(self) -> str:
        """The name every edit is recorded under: the one the person gave, else their
        OS account (never a placeholder such as "annotator")."""
        return self._str("annotator/name", "").strip() or os_account()

    @annotator.setter
    def annotator(self, name: str) -> None:
        self.q.setValue("annotator/name", name.strip())

    @property
    def annotator_named(self) -> bool:
        """Whether the person has said who they are (asked on first start)."""
        return bool(self._str("annotator/name", "").strip())

    # appearance ---------------------------------------------------------------
    @property
    def theme(self) -> str:
        t = self._str("appearance/theme", "system")
        return t if t in THEMES else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"unknown theme {value!r}")
        self.q.setValue("appearance/theme", value)

    # training -----------------------------------------------------------------
    @property
    def image_size(self) -> int:
        # 64 px: the engine's default; 128 costs 4x the compute for little gain in ranking
        return max(32, min(1024, self._int("training/image_size", 64)))

    @image_size.setter
    def image_size(self, value: int) -> None:
        self.q.setValue("training/image_size", int(value))

    @property
    def device(self) -> str:
        d = self._str("training/device", "auto")
        return d if d in DEVICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        if value not in DEVICES:
            raise ValueError(f"unknown device {value!r}")
        self.q.setValue("training/device", value)

    @property
    def method(self) -> str:
        return self._str("training/method", "deepgum")

    @method.setter
    def method(self, value: str) -> None:
        self.q.setValue("training/method", value)

    @property
    def epochs(self) -> int:
        """Epochs of the next run; 0 = automatic (the trainer picks them from the task
        and the number of training samples). A new key: the old one, training/epochs,
        held the old default of 20 for everyone who had trained, so it is not read."""
        return max(0, self._int(EPOCHS_KEY, 0))

    @epochs.setter
    def epochs(self, value: int) -> None:
        self.q.setValue(EPOCHS_KEY, int(value))

    # recent projects ----------------------------------------------------------
    @property
    def recent_projects(self) -> list[str]:
        v = self.q.value("projects/recent", [])
        if isinstance(v, str):
            v = [v] if v else []
        return [str(p) for p in (v or [])][:MAX_RECENT]

    def add_recent(self, path: str | os.PathLike[str]) -> None:
        p = str(Path(path).resolve())
        items = [p] + [r for r in self.recent_projects if r != p]
        self.q.setValue("projects/recent", items[:MAX_RECENT])

    def clear_recent(self) -> None:
        self.q.setValue("projects/recent", [])

    # window state -------------------------------------------------------------
    def value(self, key: str, default: object = None) -> object:
        return self.q.value(key, default)

    def set_value(self, key: str, value: object) -> None:
        self.q.setValue(key, value)

    def sync(self) -> None:
        self.q.sync()


def settings() -> Settings:
    """The settings factory: the one way to reach user settings."""
    return Settings(settings_dir() / f"{APP_NAME}.ini")
