"""The Models dock: what models Sfumato can find, and ways to add more.

- Lists the catalog (:func:`sfumato.inference.catalog.list_models`): the built-in demo
  model, the user's configured files and folders, the usual ComfyUI and
  AUTOMATIC1111/Forge model folders, and the Hugging Face cache. Scanning reads file
  headers only (no torch).
- "Add file…" / "Add folder…" append to the configuration's ``model_paths``
  (:mod:`sfumato.vocabulary.config`), then rescan.
- "Download" fetches a diffusers model from the Hugging Face hub by id
  (``org/name``) with ``huggingface_hub.snapshot_download`` on a background thread; the
  bar counts files. Offline (``HF_HUB_OFFLINE`` set, or no connection) the user is told
  so plainly, with the local alternative.
- With no model at all, an empty state explains what to do.

``models_changed(list[ModelEntry])`` fires after each scan (the Generation dock's picker
follows it).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sfumato.inference.catalog import BUILTIN_SOURCE, ModelEntry, Origin, WeightsKind, list_models
from sfumato.vocabulary.config import load_config, save_config

log = logging.getLogger(__name__)

__all__ = ["DownloadThread", "ModelsDock", "add_model_path", "offline_reason"]

#: Files a diffusers pipeline needs (weights as safetensors only: no pickles).
DOWNLOAD_PATTERNS = ["*.json", "*.txt", "*.safetensors", "tokenizer*/*", "*.model"]

EMPTY_TEXT = (
    "No model found.\n\nAdd a Stable Diffusion checkpoint (.safetensors) or a diffusers "
    "folder with “Add file…” or “Add folder…”, put one in ComfyUI's or AUTOMATIC1111's "
    "models folder, or download one below."
)

_ORIGIN_NAMES = {
    Origin.BUILTIN: "built-in",
    Origin.CONFIGURED: "added",
    Origin.COMFYUI: "ComfyUI",
    Origin.A1111: "A1111",
    Origin.HUB: "hub cache",
}


def offline_reason() -> str | None:
    """Why downloading cannot work right now, or ``None`` when it may."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return (
                f"Downloads are off: Sfumato is running offline ({var} is set). Copy a "
                ".safetensors checkpoint to this computer and use “Add file…” instead."
            )
    return None


def add_model_path(path: Path) -> tuple[str, ...]:
    """Append ``path`` to the configuration's ``model_paths`` (once); returns them all."""
    config = load_config()
    text = str(Path(path).expanduser())
    if text in config.model_paths:
        return config.model_paths
    config = config.replace(model_paths=(*config.model_paths, text))
    save_config(config)
    return config.model_paths


class DownloadThread(QObject):
    """Runs one ``snapshot_download`` on a daemon thread (a file download cannot be
    interrupted; a daemon thread never keeps the program from quitting).

    Signals (queued to the GUI thread): ``progress(done, total)`` in files,
    ``done(path)``, ``failed(message)``, then ``ended``.
    """

    progress = Signal(int, int)
    done = Signal(str)
    failed = Signal(str)
    ended = Signal()

    def __init__(self, repo_id: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.repo_id = repo_id
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"download {self.repo_id}", daemon=True)
        self._thread.start()

    def isRunning(self) -> bool:  # noqa: N802 - mirrors QThread
        return self._thread is not None and self._thread.is_alive()

    def wait(self, ms: int) -> bool:
        if self._thread is not None:
            self._thread.join(ms / 1000)
        return not self.isRunning()

    def _run(self) -> None:
        try:
            self._download()
        finally:
            self.ended.emit()

    def _download(self) -> None:
        try:
            from huggingface_hub import snapshot_download
            from tqdm.auto import tqdm
        except ImportError as error:
            self.failed.emit(f"Downloading needs the huggingface_hub package ({error}).")
            return
        emit = self.progress.emit

        class _Bar(tqdm):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = False
                kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed with the bar
                super().__init__(*args, **kwargs)

            def update(self, n: float | None = 1) -> bool | None:
                result = super().update(n)
                emit(int(self.n), int(self.total or 0))
                return result

            def close(self) -> None:
                super().close()
                self.fp.close()

        try:
            path = snapshot_download(self.repo_id, allow_patterns=DOWNLOAD_PATTERNS, tqdm_class=_Bar)
        except Exception as error:  # noqa: BLE001 - every failure becomes one message
            self.failed.emit(_download_error(self.repo_id, error))
            return
        self.done.emit(str(path))


def _download_error(repo_id: str, error: BaseException) -> str:
    name = type(error).__name__
    if "NotFound" in name or "RepositoryNotFound" in name:
        return f"No model named {repo_id!r} on the hub: check the id (org/name)."
    if "Offline" in name or "Connection" in name or "LocalEntryNotFound" in name or isinstance(error, OSError):
        return (
            f"Cannot reach the model hub to download {repo_id!r}: you seem to be offline. "
            "Connect to the internet, or add a local .safetensors file with “Add file…”."
        )
    return f"Download of {repo_id!r} failed: {error}"


class ModelsDock(QWidget):
    """See the module docstring."""

    models_changed = Signal(object)  # list[ModelEntry]
    model_chosen = Signal(str)  # a checkpoint's source, double-clicked in the list

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        scan: Callable[[], list[ModelEntry]] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("modelsDock")
        self.setWindowTitle("Models")
        self._scan = scan or (lambda: list_models())
        self._entries: list[ModelEntry] = []
        self._download: DownloadThread | None = None

        self.list = QListWidget()
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setWordWrap(True)
        self.empty.setObjectName("modelsEmpty")
        self.add_file_button = QPushButton("Add file…")
        self.add_file_button.setToolTip("A .safetensors checkpoint, ControlNet or LoRA")
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip("A diffusers model folder, or a folder of checkpoints to scan")
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip("Look again in the configured, ComfyUI and A1111 folders")
        row = QHBoxLayout()
        for b in (self.add_file_button, self.add_folder_button, self.rescan_button):
            row.addWidget(b)

        self.repo = QLineEdit()
        self.repo.setPlaceholderText("Hub id, e.g. stable-diffusion-v1-5/stable-diffusion-v1-5")
        self.download_button = QPushButton("Download")
        self.download_progress = QProgressBar()
        self.download_progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("modelsStatus")
        download_row = QHBoxLayout()
        download_row.addWidget(self.repo, 1)
        download_row.addWidget(self.download_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        layout.addWidget(QLabel("Download from the Hugging Face hub"))
        layout.addLayout(download_row)
        layout.addWidget(self.download_progress)
        layout.addWidget(self.status)

        self.list.itemDoubleClicked.connect(lambda _item: self.choose_selected())
        self.add_file_button.clicked.connect(lambda _=False: self.add_file())
        self.add_folder_button.clicked.connect(lambda _=False: self.add_folder())
        self.rescan_button.clicked.connect(lambda _=False: self.rescan())
        self.download_button.clicked.connect(lambda _=False: self.download(self.repo.text()))
        self.repo.returnPressed.connect(lambda: self.download(self.repo.text()))

    @property
    def entries(self) -> list[ModelEntry]:
        return list(self._entries)

    def checkpoints(self) -> list[ModelEntry]:
        return [e for e in self._entries if e.kind is WeightsKind.CHECKPOINT and e.problem is None]

    def rescan(self) -> list[ModelEntry]:
        try:
            self._entries = self._scan()
        except Exception as error:  # noqa: BLE001 - a broken folder must not break the dock
            log.exception("model scan failed")
            self._entries = []
            self.status.setText(f"Could not scan the model folders: {error}")
        self.list.clear()
        self.list.setToolTip("Double-click a checkpoint to generate with it")
        for entry in self._entries:
            kind = {WeightsKind.CHECKPOINT: "", WeightsKind.CONTROLNET: "ControlNet · ",
                    WeightsKind.LORA: "LoRA · "}.get(entry.kind, "")
            family = entry.family or "unknown family"
            label = entry.label if entry.source != BUILTIN_SOURCE else "Built-in demo model"
            if entry.problem is not None:  # listed, with its reason, but never chosen
                item = QListWidgetItem(f"{label}\n   unusable · {_ORIGIN_NAMES[entry.origin]}")
            else:
                item = QListWidgetItem(f"{label}\n   {kind}{family} · {_ORIGIN_NAMES[entry.origin]}")
            where = entry.path
            tip = f"{entry.label}\n{where if where is not None else entry.source}"
            item.setToolTip(tip + (f"\n{entry.problem}" if entry.problem is not None else ""))
            self.list.addItem(item)
        has_checkpoint = bool(self.checkpoints())
        self.empty.setVisible(not has_checkpoint)
        self.models_changed.emit(self.checkpoints())
        return self._entries

    def choose_selected(self) -> bool:
        """Use the selected checkpoint for generating (``model_chosen``); False for a
        ControlNet or LoRA (those are picked per control layer / automatically)."""
        row = self.list.currentRow()
        if not 0 <= row < len(self._entries):
            return False
        entry = self._entries[row]
        if entry.problem is not None:
            self.status.setText(entry.problem)
            return False
        if entry.kind is not WeightsKind.CHECKPOINT:
            self.status.setText(f"{entry.label} is a {entry.kind.value}, not a checkpoint to generate with.")
            return False
        self.model_chosen.emit(entry.source)
        return True

    # -- adding --------------------------------------------------------------------------
    def add_path(self, path: Path) -> None:
        """Remember ``path`` in the configuration and rescan."""
        try:
            add_model_path(path)
        except OSError as error:
            self.status.setText(f"Could not save the settings: {error}")
            return
        self.status.setText(f"Added {path}.")
        self.rescan()

    def add_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Add a model file", str(Path.home()),
            "Model weights (*.safetensors *.ckpt *.pt *.pth *.bin);;All files (*)",
        )
        if name:
            self.add_path(Path(name))

    def add_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Add a model folder", str(Path.home()))
        if name:
            self.add_path(Path(name))

    # -- downloading ---------------------------------------------------------------------
    @property
    def downloading(self) -> bool:
        return self._download is not None and self._download.isRunning()

    def download(self, repo_id: str) -> bool:
        """Start downloading ``repo_id``; False (with a message) when that cannot work."""
        repo_id = repo_id.strip()
        if self.downloading:
            self.status.setText("A download is already running.")
            return False
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            self.status.setText("Enter a hub id as org/name, e.g. stable-diffusion-v1-5/stable-diffusion-v1-5.")
            return False
        reason = offline_reason()
        if reason is not None:
            self.status.setText(reason)
            return False
        thread = DownloadThread(repo_id, self)
        thread.progress.connect(self._download_progress)
        thread.done.connect(self._download_done)
        thread.failed.connect(self._download_failed)
        thread.ended.connect(self._download_ended)
        self._download = thread
        self.download_button.setEnabled(False)
        self.download_progress.setRange(0, 0)
        self.download_progress.show()
        self.status.setText(f"Downloading {repo_id}…")
        thread.start()
        return True

    def _download_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.download_progress.setRange(0, total)
            self.download_progress.setValue(done)
            self.download_progress.setFormat(f"{done} / {total} files")

    def _download_done(self, path: str) -> None:
        self.status.setText(f"Downloaded to {path}.")
        self.rescan()

    def _download_failed(self, message: str) -> None:
        self.status.setText(message)

    def _download_ended(self) -> None:
        self.download_button.setEnabled(True)
        self.download_progress.hide()
        if self._download is not None:
            self._download.deleteLater()
        self._download = None

    def shutdown(self) -> None:
        """Called on window close: a running download is abandoned (its daemon thread
        ends with the program; the hub cache keeps finished files for next time)."""
        if self._download is not None and self._download.isRunning():
            log.info("abandoning the download of %s", self._download.repo_id)
