"""Remembered settings: window layout, tool settings, recent files and the last
generation settings, via QSettings. The window writes tool and generation settings to
disk half a second after they change (:class:`~sfumato.desktop.main_window.MainWindow`),
not only at exit, so a crash or ``kill -9`` loses at most that half second.

Settings are INI files in the user's configuration folder,
:func:`sfumato.vocabulary.config.config_dir` (beside the model settings' ``config.json``;
the ``SFUMATO_CONFIG_DIR`` environment variable names another folder: tests set it, so a
test run never reads or writes the user's own settings).
Call :func:`configure` once before the first :class:`AppSettings` is made.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from PySide6.QtCore import QByteArray, QCoreApplication, QSettings
from sfumato.canvas.model.document import Recipe
from sfumato.vocabulary.config import CONFIG_DIR_ENV, config_dir

log = logging.getLogger(__name__)

ORGANIZATION = "Sfumato"
APPLICATION = "Sfumato"
MAX_RECENT = 10


def configure() -> None:
    """Point QSettings at :func:`~sfumato.vocabulary.config.config_dir` in INI format
    (created on demand; idempotent)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _adopt_older_settings(folder)
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))


def _settings_file(folder: Path) -> Path:
    """Where QSettings keeps the user-scope INI file under ``folder``."""
    return folder / ORGANIZATION / f"{APPLICATION}.ini"


def _adopt_older_settings(folder: Path) -> None:
    """Copy the window's settings from the folder versions up to 0.1 used.

    The window kept its INI file under ``platformdirs.user_config_dir("Sfumato", "Sfumato")``
    (``~/.config/Sfumato`` on Linux) while the model settings were in ``~/.config/sfumato``;
    both now live in the one configuration folder. Copied once, when the new file does
    not exist yet; never when ``SFUMATO_CONFIG_DIR`` names the folder.
    """
    if os.environ.get(CONFIG_DIR_ENV, "").strip():
        return
    import platformdirs

    older = _settings_file(Path(platformdirs.user_config_dir(APPLICATION, ORGANIZATION)))
    newer = _settings_file(folder)
    if newer.exists() or not older.is_file():
        return
    try:
        newer.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(older, newer)
    except OSError as error:
        log.warning("cannot copy the window settings from %s: %s", older, error)


class AppSettings:
    """Typed access to the keys Sfumato stores; one instance per window is fine."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        if qsettings is None:
            configure()
            qsettings = QSettings()
        self._q = qsettings

    @property
    def qsettings(self) -> QSettings:
        return self._q

    def sync(self) -> None:
        self._q.sync()

    # -- plain typed values ------------------------------------------------------------
    def get_float(self, key: str, default: float) -> float:
        value = self._q.value(key, default)
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return default

    def get_int(self, key: str, default: int) -> int:
        value = self._q.value(key, default)
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return default

    def get_str(self, key: str, default: str) -> str:
        value = self._q.value(key, default)
        return value if isinstance(value, str) else default

    def set(self, key: str, value: object) -> None:
        self._q.setValue(key, value)

    # -- window layout -----------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """(geometry, dock/toolbar state) saved by :meth:`save_window_state`, or Nones."""
        geometry = self._q.value("window/geometry")
        state = self._q.value("window/state")
        return (
            geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self._q.setValue("window/geometry", geometry)
        self._q.setValue("window/state", state)

    # -- recent files ------------------------------------------------------------------
    def recent_files(self) -> list[Path]:
        """Most recent first; only files that still exist."""
        raw = self._q.value("files/recent", [])
        if isinstance(raw, str):
            raw = [raw]
        paths = [Path(p) for p in (raw or []) if isinstance(p, str) and p]
        return [p for p in paths if p.exists()]

    def add_recent_file(self, path: Path) -> list[Path]:
        path = path.resolve()
        paths = [path] + [p for p in self.recent_files() if p.resolve() != path]
        paths = paths[:MAX_RECENT]
        self._q.setValue("files/recent", [str(p) for p in paths])
        return paths

    def clear_recent_files(self) -> None:
        self._q.setValue("files/recent", [])

    def last_directory(self) -> str:
        return self.get_str("files/last_dir", str(Path.home()))

    def set_last_directory(self, path: Path) -> None:
        self._q.setValue("files/last_dir", str(path.parent if path.is_file() else path))

    def keep_backup(self) -> bool:
        """Whether saving keeps the previous file as ``name.ora~`` (on unless turned off
        with ``files/keep_backup=false``, as Krita's backup files)."""
        return str(self._q.value("files/keep_backup", "true")).lower() not in ("false", "0", "no")

    # -- the last generation settings ---------------------------------------------------
    def last_recipe(self) -> Recipe:
        """The prompt, model and sampling settings last used (a new document starts from
        them); the seed is left out: it belongs to one picture."""
        try:
            data = json.loads(self.get_str("generation/last_recipe", "{}"))
        except ValueError:
            return Recipe()
        if not isinstance(data, dict):
            return Recipe()
        kept = {k: v for k, v in data.items() if k in _REMEMBERED and isinstance(v, _REMEMBERED[k])}
        try:
            return Recipe(**kept)
        except (TypeError, ValueError):
            return Recipe()

    def save_last_recipe(self, recipe: Recipe) -> None:
        values = {k: getattr(recipe, k) for k in _REMEMBERED if getattr(recipe, k) not in (None, "")}
        self._q.setValue("generation/last_recipe", json.dumps(values))


#: What :meth:`AppSettings.last_recipe` remembers, with the types it accepts back.
_REMEMBERED: dict[str, type | tuple[type, ...]] = {
    "prompt": str, "negative": str, "model": str, "steps": int, "cfg": (int, float),
    "strength": (int, float), "sampler": str,
}
