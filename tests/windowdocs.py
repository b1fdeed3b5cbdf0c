"""Small documents for the window tests and the desktop benchmark."""

from __future__ import annotations

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface


def small_document(width: int = 320, height: int = 240) -> Document:
    """White background + an empty, active paint layer."""
    doc = Document(width, height)
    background = PixelLayer(
        "Background", TiledSurface.from_array(np.full((height, width, 4), 255, np.uint8))
    )
    paint = PixelLayer("Paint")
    doc.root.append(paint)
    doc.root.append(background)
    doc.active = paint
    return doc


def grab_widget(widget) -> np.ndarray:  # noqa: ANN001 - a QWidget
    """The widget's pixels as RGBA uint8 (h, w, 4) (renders it now: ``QWidget.grab``)."""
    from sfumato.desktop.files import qimage_to_rgba

    return qimage_to_rgba(widget.grab().toImage())
