"""Transient images drawn over the canvas: live denoising previews and staged results.

An :class:`ImageOverlay` shows one RGBA picture stretched over a rectangle in document
pixels, drawn by the canvas view after the document (``view.add_overlay``). It is never
written into a layer and never enters undo: clearing it leaves the document untouched.

The generation controller keeps two of them: the *preview* overlay (updated every
denoising step, cleared on finish/cancel/failure) and the *staging* overlay (a finished
result waiting for accept/discard, see :mod:`sfumato.desktop.staging`).

Inpaint previews are shown through the plan's paste mask (:func:`masked_preview`), so the
preview covers only the pixels the result will actually replace.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from sfumato.canvas.model.geometry import Rect
from sfumato.desktop.canvas_view import CanvasView

log = logging.getLogger(__name__)

__all__ = ["ImageOverlay", "masked_preview", "rgba_to_qimage"]

#: Previews are shown at most this many pixels a side (QPainter scales them up).
PREVIEW_MAX_SIDE = 1024


def rgba_to_qimage(pixels: np.ndarray) -> QImage:
    """uint8 ``(h, w, 3)`` RGB or ``(h, w, 4)`` straight-alpha RGBA → an owning QImage."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    if pixels.shape[2] == 3:
        image = QImage(pixels.data, w, h, w * 3, QImage.Format.Format_RGB888)
        return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    image = QImage(pixels.data, w, h, w * 4, QImage.Format.Format_RGBA8888)
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def masked_preview(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """A preview (uint8 RGB, any size) as RGBA at ``alpha``'s size (float32 in [0, 1]).

    Without ``alpha`` the preview is returned opaque at its own size. With it, the
    preview is scaled (bilinear) to ``alpha``'s shape — capped at
    :data:`PREVIEW_MAX_SIDE` a side, ``alpha`` scaled along — and ``alpha`` becomes its
    alpha channel.
    """
    import cv2

    rgb = np.asarray(rgb, dtype=np.uint8)[..., :3]
    if alpha is None:
        out = np.empty((*rgb.shape[:2], 4), np.uint8)
        out[..., :3] = rgb
        out[..., 3] = 255
        return out
    h, w = alpha.shape
    scale = min(1.0, PREVIEW_MAX_SIDE / max(h, w, 1))
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    if (th, tw) != (h, w):
        alpha = cv2.resize(alpha.astype(np.float32), (tw, th), interpolation=cv2.INTER_AREA)
    out = np.empty((th, tw, 4), np.uint8)
    out[..., :3] = cv2.resize(np.ascontiguousarray(rgb), (tw, th), interpolation=cv2.INTER_LINEAR)
    out[..., 3] = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


class ImageOverlay(QObject):
    """One picture over a document rectangle on one view (see the module docstring).

    ``frame`` draws a thin outline around the rectangle (used while previewing, so an
    inpaint area is visible even where the mask hides the preview).
    """

    def __init__(self, view: CanvasView, z: float, *, frame: bool = False) -> None:
        super().__init__(view)
        self._view = view
        self._image: QImage | None = None
        self._rect: Rect | None = None
        self._frame = frame
        view.add_overlay(self.paint, z)

    @property
    def visible(self) -> bool:
        return self._image is not None and self._rect is not None

    @property
    def rect(self) -> Rect | None:
        """Where the picture is shown, document pixels (``None`` when cleared)."""
        return self._rect

    def show(self, pixels: np.ndarray, rect: Rect) -> None:
        """Show ``pixels`` (uint8 RGB or straight RGBA, any size) stretched over ``rect``."""
        self.show_image(rgba_to_qimage(pixels), rect)

    def show_image(self, image: QImage, rect: Rect) -> None:
        """Show a ready ``QImage`` (e.g. made on the worker thread) stretched over ``rect``."""
        old = self._rect
        self._image = image
        self._rect = rect
        self._repaint(old)
        self._repaint(rect)

    def clear(self) -> None:
        old = self._rect
        self._image = None
        self._rect = None
        self._repaint(old)

    def _repaint(self, rect: Rect | None) -> None:
        if rect is not None:
            self._view.update_document_rect(Rect(rect.x - 2, rect.y - 2, rect.w + 4, rect.h + 4))

    def paint(self, painter: QPainter, view: CanvasView) -> None:
        if self._image is None or self._rect is None:
            return
        target = view.document_rect_to_widget(self._rect)
        painter.setOpacity(1.0)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(target, self._image, QRectF(self._image.rect()))
        if self._frame:
            pen = QPen(QColor(255, 255, 255, 200), 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(target.adjusted(-0.5, -0.5, 0.5, 0.5))
