"""User settings stored as JSON: where models live, which one is the default.

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
the program: it is read as defaults and a warning is logged. Saving is atomic (write a
temporary file, then rename). Imports no torch and no Qt.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["CONFIG_FILE", "Config", "config_dir", "config_path", "load_config", "recovery_dir", "save_config"]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
_ENV_DIR = "SFUMATO_CONFIG_DIR"


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
    override = os.environ.get(_ENV_DIR, "").strip()
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


def load_config(path: Path | None = None) -> Config:
    """Read the settings; a missing or damaged file gives the defaults."""
    path = config_path() if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as error:
        log.warning("cannot read settings %s (%s); using defaults", path, error)
        return Config()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        log.warning("settings file %s is not valid JSON (%s); using defaults", path, error)
        return Config()
    if not isinstance(data, dict):
        log.warning("settings file %s does not hold a JSON object; using defaults", path)
        return Config()
    return Config.from_json(data)


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write the settings atomically (temporary file + rename); returns the file's path."""
    path = config_path() if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config.to_json(), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
