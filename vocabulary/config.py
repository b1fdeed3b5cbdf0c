"""The user's configuration: its folder, the settings file, and reading JSON files.

One definition for every room: the engine's catalog reads the model settings, the window
keeps its own settings (QSettings) in the same folder and writes the model settings, the
command line reads both; recovery journals live in :func:`recovery_dir`.

User settings stored as JSON: where models live, which one is the default.

The file is ``config.json`` in :func:`config_dir`: ``platformdirs.user_config_dir("sfumato")``
(e.g. ``~/.config/sfumato`` on Linux), or the folder named by the environment variable
``SFUMATO_CONFIG_DIR`` (the tests point it at a temporary folder).

Known keys:

- ``model_paths``: list of folders or files the model picker scans (besides the usual
  ComfyUI / AUTOMATIC1111 folders and the Hugging Face cache);
- ``default_model``: a model source (file, diffusers folder, hub id or ``"builtin"``)
  or ``null`` for the built-in model.

Unknown keys are kept (``Config.extra``) and written back unchanged, so other parts of
the program can store their own settings in the same file. A damaged file never stops
the program: it is read as defaults and a warning is logged. Saving is atomic
(:func:`~sfumato.vocabulary.atomic_file.atomic_write`). Imports no torch and no Qt.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sfumato.vocabulary.atomic_file import atomic_write

__all__ = [
    "CONFIG_DIR_ENV",
    "CONFIG_FILE",
    "Config",
    "config_dir",
    "config_path",
    "load_config",
    "read_json",
    "recovery_dir",
    "save_config",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CONFIG_DIR_ENV = "SFUMATO_CONFIG_DIR"
#: The largest JSON file :func:`read_json` reads (a settings file or a model's
#: ``model_index.json``/``config.json`` is a few KB).
MAX_JSON_BYTES = 4 << 20


@dataclass(frozen=True)
class Config:
    """The user's settings; ``replace(**changes)`` gives a changed copy."""

    model_paths: tuple[str, ...] = ()
    default_model: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_paths", tuple(str(p) for p in self.model_paths))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def replace(self, **changes: Any) -> Config:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.extra)
        data["model_paths"] = list(self.model_paths)
        data["default_model"] = self.default_model
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Config:
        """Build from parsed JSON, ignoring values of the wrong type (with a warning)."""
        extra = {k: v for k, v in data.items() if k not in ("model_paths", "default_model")}
        paths_raw = data.get("model_paths", [])
        if isinstance(paths_raw, str):
            paths_raw = [paths_raw]
        if not isinstance(paths_raw, list) or not all(isinstance(p, str) for p in paths_raw):
            log.warning("settings: model_paths must be a list of folder names; ignored")
            paths_raw = []
        default = data.get("default_model")
        if default is not None and not isinstance(default, str):
            log.warning("settings: default_model must be text or null; ignored")
            default = None
        return cls(model_paths=tuple(paths_raw), default_model=default or None, extra=extra)


def config_dir() -> Path:
    """The settings folder: ``$SFUMATO_CONFIG_DIR`` or the platform's user config folder."""
    override = os.environ.get(CONFIG_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("sfumato", appauthor=False))


def recovery_dir() -> Path:
    """Where recovery journals live (one folder per open document): ``$SFUMATO_RECOVERY_DIR``
    or ``recovery`` in the platform's user data folder (e.g. ``~/.local/share/sfumato``)."""
    override = os.environ.get("SFUMATO_RECOVERY_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("sfumato", appauthor=False)) / "recovery"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def read_json(path: Path, what: str | None = None) -> dict[str, Any] | None:
    """The JSON object in ``path``, a regular file of at most :data:`MAX_JSON_BYTES`.

    ``None`` for a missing file, and for one that cannot be read, is too large, is not
    valid JSON or does not hold an object; with ``what`` (e.g. ``"settings file"``) those
    last cases are logged as a warning naming it. Never raises for the file's content.
    """
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("does not hold a JSON object")
    except (OSError, ValueError, RecursionError) as error:
        if what is not None:
            log.warning("cannot read %s %s (%s)", what, path, error)
        return None
    return data


def load_config(path: Path | None = None) -> Config:
    """Read the settings; a missing or damaged file gives the defaults (with a warning)."""
    path = config_path() if path is None else Path(path)
    data = read_json(path, "settings file")
    return Config() if data is None else Config.from_json(data)


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write the settings atomically; returns the file's path."""
    path = config_path() if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config.to_json(), indent=2, ensure_ascii=False) + "\n"
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))
    return path
