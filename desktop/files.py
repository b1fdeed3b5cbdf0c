"""Files: open/save OpenRaster, import images as layers, export PNG/ORA, recent files,
drag-and-drop and clipboard paste, and the unsaved-changes prompt.

:class:`DocumentFiles` is the controller; the main window owns one and wires its actions.
It asks the user through ``QFileDialog``/``QMessageBox`` static functions (tests replace
them) and never blocks the GUI longer than the file operation itself. Errors become a
message box that says what happened and what to do next; the open document stays as it
was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QObject, Signal
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.desktop import layer_actions
from sfumato.desktop.settings import AppSettings

log = logging.getLogger(__name__)

ORA_FILTER = "OpenRaster (*.ora)"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp)"
PNG_FILTER = "PNG image (*.png)"
PSD_FILTER = "Photoshop (*.psd)"
OPEN_FILTER = f"Sfumato documents and images (*.ora *.png *.jpg *.jpeg *.webp);;{ORA_FILTER};;{IMAGE_FILTER}"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".webp"}

DEFAULT_SIZE = (1024, 1024)


def new_document(
    width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1], white_background: bool = True,
    recipe: Recipe | None = None,
) -> Document:
    """A blank document: an empty paint layer (active) over a white background layer
    (left out when ``white_background`` is False), with ``recipe`` (e.g. the last used)."""
    doc = Document(width, height, recipe=recipe if recipe is not None else Recipe())
    paint = PixelLayer("Paint")
    doc.root.append(paint)
    if white_background:
        background = PixelLayer(
            "Background",
            TiledSurface.from_array(np.full((height, width, 4), 255, np.uint8)),
        )
        doc.root.append(background)
    doc.active = paint
    return doc


def load_document(path: Path) -> Document:
    """Open ``path``: an .ora as a document, an image as a one-layer document."""
    if path.suffix.lower() == ".ora":
        from sfumato.canvas.files.ora import load_ora

        return load_ora(path)
    from sfumato.canvas.files.imageio import load_image_document

    return load_image_document(path)


def qimage_to_rgba(image: QImage) -> np.ndarray:
    """A QImage as a new straight-alpha RGBA uint8 ``(h, w, 4)`` array."""
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = image.width(), image.height()
    ptr = image.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=image.bytesPerLine() * h).reshape(h, image.bytesPerLine())
    return arr[:, : w * 4].reshape(h, w, 4).copy()


class DocumentFiles(QObject):
    """Owns the current file path and performs file operations for a window.

    ``document_opened(doc)`` is emitted when a new document replaces the current one (the
    window rebinds its views); ``path_changed(path | None)`` when the file name changes;
    ``message(text)`` for the status bar.
    """

    document_opened = Signal(object)
    path_changed = Signal(object)
    saved = Signal(object)  # Path: the document was written there (and marked clean)
    recent_changed = Signal(list)
    message = Signal(str)

    def __init__(
        self,
        parent_widget: QWidget,
        settings: AppSettings,
        current: Callable[[], Document | None],
    ) -> None:
        super().__init__(parent_widget)
        self._widget = parent_widget
        self._settings = settings
        self._current = current
        self.path: Path | None = None

    # -- helpers ---------------------------------------------------------------------------
    def _error(self, title: str, exc: BaseException, advice: str) -> None:
        log.warning("%s: %s", title, exc)
        QMessageBox.critical(self._widget, title, f"{exc}\n\n{advice}")

    def set_path(self, path: Path | None) -> None:
        """Name the current document's file without reading or writing it (a recovered
        document keeps the path it came from)."""
        self._set_path(path)

    def _set_path(self, path: Path | None) -> None:
        self.path = path
        self.path_changed.emit(path)
        if path is not None:
            self._settings.set_last_directory(path)
            self.recent_changed.emit(self._settings.add_recent_file(path))

    def _dir(self) -> str:
        return str(self.path.parent) if self.path else self._settings.last_directory()

    # -- unsaved changes -------------------------------------------------------------------
    def is_modified(self) -> bool:
        doc = self._current()
        return doc is not None and not doc.history.is_clean

    def confirm_discard(self) -> bool:
        """Ask before losing unsaved changes: Save / Discard / Cancel. True to go ahead."""
        if not self.is_modified():
            return True
        name = self.path.name if self.path else "Untitled"
        answer = QMessageBox.question(
            self._widget,
            "Unsaved changes",
            f"{name} has changes that are not saved.\n\nSave them before closing?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    # -- new / open ------------------------------------------------------------------------
    def new(self) -> bool:
        """Ask for a size, then replace the document with a blank one."""
        from sfumato.desktop import new_document_dialog

        spec = new_document_dialog.ask_new_document(self._widget)
        if spec is None or not self.confirm_discard():
            return False
        self.document_opened.emit(
            new_document(spec.width, spec.height, spec.white_background, self._settings.last_recipe())
        )
        self.path = None
        self.path_changed.emit(None)
        return True

    def open(self, path: Path | None = None) -> bool:
        """Open an .ora or an image (asks for a file when ``path`` is None)."""
        if path is None:
            name, _ = QFileDialog.getOpenFileName(self._widget, "Open", self._dir(), OPEN_FILTER)
            if not name:
                return False
            path = Path(name)
        if not self.confirm_discard():
            return False
        return self.open_path(path)

    def open_path(self, path: Path) -> bool:
        """Open ``path`` without asking anything (command line, recent files)."""
        try:
            doc = load_document(path)
        except Exception as exc:  # noqa: BLE001 - any failure to read is reported
            self._error(
                "Could not open file",
                exc,
                "The current document is unchanged. Check that the file is an OpenRaster "
                "(.ora), PNG, JPEG or WebP file and that it is not damaged.",
            )
            return False
        doc.history.mark_clean()
        self.document_opened.emit(doc)
        if path.suffix.lower() == ".ora":
            self._set_path(path)
        else:
            self.path = None  # an image opens as a new, unsaved document
            self.path_changed.emit(None)
            self._settings.set_last_directory(path)
        self.message.emit(f"Opened {path.name}")
        return True

    # -- save ------------------------------------------------------------------------------
    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self._save_ora(self.path)

    def save_as(self) -> bool:
        start = str(self.path) if self.path else str(Path(self._dir()) / "Untitled.ora")
        name, _ = QFileDialog.getSaveFileName(self._widget, "Save as", start, ORA_FILTER)
        if not name:
            return False
        path = Path(name)
        if path.suffix.lower() != ".ora":
            path = path.with_suffix(".ora")
        return self._save_ora(path)

    def _save_ora(self, path: Path) -> bool:
        doc = self._current()
        if doc is None:
            return False
        from sfumato.canvas.files.ora import save_ora

        try:
            save_ora(doc, path, backup=self._settings.keep_backup())
        except Exception as exc:  # noqa: BLE001
            self._error(
                "Could not save",
                exc,
                "Nothing was overwritten: the file and its backup are as they were, and "
                "your changes are still here (and in the recovery journal). Choose another "
                "folder or free some disk space, then save again.",
            )
            return False
        doc.history.mark_clean()
        self._set_path(path)
        self.saved.emit(path)
        self.message.emit(f"Saved {path.name}")
        return True

    # -- export ----------------------------------------------------------------------------
    def export(self) -> bool:
        """Export a flattened PNG (with the recipe as ``parameters``), an .ora copy or a
        layered PSD, chosen by the file name's suffix (or the chosen filter)."""
        doc = self._current()
        if doc is None:
            return False
        stem = self.path.stem if self.path else "Untitled"
        name, chosen = QFileDialog.getSaveFileName(
            self._widget, "Export", str(Path(self._dir()) / f"{stem}.png"),
            f"{PNG_FILTER};;{ORA_FILTER};;{PSD_FILTER}",
        )
        if not name:
            return False
        path = Path(name)
        suffix = path.suffix.lower() or {ORA_FILTER: ".ora", PSD_FILTER: ".psd"}.get(chosen, ".png")
        try:
            if suffix == ".ora":
                from sfumato.canvas.files.ora import save_ora

                save_ora(doc, path.with_suffix(".ora"))
            elif suffix == ".psd":
                from sfumato.canvas.files.psd import save_psd

                save_psd(doc, path.with_suffix(".psd"))
            else:
                from sfumato.canvas.files.imageio import export_png
                from sfumato.canvas.files.recipe_parameters import picture_parameters

                export_png(doc, path.with_suffix(".png"), picture_parameters(doc))
        except Exception as exc:  # noqa: BLE001
            self._error("Could not export", exc, "Choose another folder or file name and try again.")
            return False
        self.message.emit(f"Exported {path.name}")
        return True

    # -- import ----------------------------------------------------------------------------
    def import_layer(self, path: Path | None = None) -> bool:
        """Add a PNG/JPEG/WebP file as a new paint layer above the active one (undoable)."""
        doc = self._current()
        if doc is None:
            return False
        if path is None:
            name, _ = QFileDialog.getOpenFileName(
                self._widget, "Import image as layer", self._dir(), IMAGE_FILTER
            )
            if not name:
                return False
            path = Path(name)
        from sfumato.canvas.files.imageio import load_image_layer

        try:
            layer = load_image_layer(path)
        except Exception as exc:  # noqa: BLE001
            self._error(
                "Could not import image", exc, "Only PNG, JPEG and WebP images can be imported."
            )
            return False
        layer.name = layer_actions.unique_name(doc, layer.name)
        layer_actions.add_layer(doc, None, layer=layer)
        self._settings.set_last_directory(path)
        self.message.emit(f"Imported {path.name} as a layer")
        return True

    def paste_image(self, image: QImage, name: str = "Pasted") -> bool:
        """Add ``image`` as a new paint layer at the top-left of the view (undoable)."""
        doc = self._current()
        if doc is None or image.isNull():
            return False
        rgba = qimage_to_rgba(image)
        layer = PixelLayer(layer_actions.unique_name(doc, name), TiledSurface.from_array(rgba))
        layer_actions.add_layer(doc, None, layer=layer)
        self.message.emit(f"Pasted {image.width()}×{image.height()} image as a layer")
        return True

    def copy(self, merged: bool = False) -> bool:
        """Put the active layer's pixels (or the visible picture, ``merged``) on the
        clipboard, cut to the selection's bounds and faded by its coverage."""
        doc = self._current()
        if doc is None:
            return False
        from sfumato.canvas.model.layers import document_offset
        from sfumato.canvas.paint.selection import selection_bounds
        from sfumato.canvas.render.composite import flatten

        rect = selection_bounds(doc).intersect(doc.rect)
        if rect.empty:
            self.message.emit("Nothing is selected to copy.")
            return False
        if merged:
            pixels = flatten(doc, rect)
        else:
            layer = doc.active
            if not isinstance(layer, PixelLayer):
                self.message.emit("Select a pixel layer to copy (or use Copy Merged).")
                return False
            ox, oy = document_offset(layer)
            pixels = layer.surface.read(rect.translate(-ox, -oy))
        if doc.selection is not None:
            cover = doc.selection[rect.slices()]
            pixels = pixels.copy()
            pixels[..., 3] = (pixels[..., 3] * cover).round().astype(np.uint8)
        data = np.ascontiguousarray(pixels)
        image = QImage(data.data, rect.w, rect.h, rect.w * 4, QImage.Format.Format_RGBA8888).copy()
        QGuiApplication.clipboard().setImage(image)
        self.message.emit(f"Copied {rect.w}×{rect.h} pixels")
        return True

    def paste(self) -> bool:
        """Paste an image (or image files) from the clipboard as new layers."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None or not self.handle_mime(mime):
            self.message.emit("The clipboard holds no image to paste.")
            return False
        return True

    # -- drag and drop ---------------------------------------------------------------------
    @staticmethod
    def accepts_mime(mime: QMimeData) -> bool:
        if mime.hasImage():
            return True
        return any(
            Path(url.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES | {".ora"}
            for url in mime.urls()
            if url.isLocalFile()
        )

    def handle_mime(self, mime: QMimeData) -> bool:
        """Dropped or pasted data: an .ora opens; images become layers. True if handled."""
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        ora = [p for p in paths if p.suffix.lower() == ".ora"]
        images = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
        if ora:
            return self.open(ora[0])
        if images:
            if self._current() is None:
                return self.open_path(images[0])
            return all(self.import_layer(p) for p in images)
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage):
                return self.paste_image(image)
        return False
