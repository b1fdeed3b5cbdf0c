"""Undoable changes to the layer tree: add, remove, move, duplicate, merge down.

Each command keeps the layer it took out of the tree (its pixels shared copy-on-write),
so undo puts back the very same object and the active layer is restored with it.
"""

from __future__ import annotations

import numpy as np
from sfumato.canvas.edits.commands import (
    InvalidEditError,
    held_bytes,
    in_document,
    require_in_document,
    require_unlocked,
)
from sfumato.canvas.edits.pixel_commands import PutPixels
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.history import Command
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, copy_layer, document_offset
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.render.composite import flatten_layers


class AddLayer(Command):
    """Insert ``layer`` into ``parent`` (the root by default) at ``index`` (0 = top)."""

    def __init__(self, doc: Document, layer: Layer, parent: GroupLayer | None = None, index: int = 0,
                 activate: bool = True) -> None:
        self.doc = doc
        self.layer = layer
        self.parent = parent if parent is not None else doc.root
        self.index = index
        self.activate = activate
        self._previous_active: Layer | None = None
        self.label = f"Add Layer {layer.name}"

    def redo(self) -> None:
        if self.layer.parent is not None:
            raise InvalidEditError(f"{self.layer.name!r} already belongs to a group; move it instead")
        if not in_document(self.doc, self.parent):
            raise InvalidEditError(f"group {self.parent.name!r} is not in this document")
        if not 0 <= self.index <= len(self.parent.children):
            raise InvalidEditError(
                f"index {self.index} is outside 0..{len(self.parent.children)} for {self.parent.name!r}"
            )
        self._previous_active = self.doc.active
        self.doc._raw_insert(self.layer, self.parent, self.index)
        if self.activate:
            self.doc.set_active(self.layer)

    def undo(self) -> None:
        self.doc._raw_remove(self.layer)
        if self.activate:
            prev = self._previous_active
            self.doc.set_active(prev if prev is not None and in_document(self.doc, prev) else None)

    def nbytes(self) -> int:
        return held_bytes(self.doc, self.layer)


class RemoveLayer(Command):
    def __init__(self, doc: Document, layer: Layer) -> None:
        self.doc = doc
        self.layer = layer
        self.label = f"Remove Layer {layer.name}"
        self._where: tuple[GroupLayer, int] | None = None
        self._active: Layer | None = None

    def redo(self) -> None:
        require_in_document(self.doc, self.layer)
        self._active = self.doc.active
        self._where = self.doc._raw_remove(self.layer)

    def undo(self) -> None:
        assert self._where is not None
        parent, index = self._where
        self.doc._raw_insert(self.layer, parent, index)
        if self._active is not None and in_document(self.doc, self._active):
            self.doc.set_active(self._active)

    def nbytes(self) -> int:
        return held_bytes(self.doc, self.layer)


class MoveLayer(Command):
    """Reorder or reparent: put ``layer`` into ``parent`` at ``index`` (counted after removal)."""

    def __init__(self, doc: Document, layer: Layer, parent: GroupLayer | None = None, index: int = 0) -> None:
        self.doc = doc
        self.layer = layer
        self.parent = parent if parent is not None else doc.root
        self.index = index
        self.label = f"Move Layer {layer.name}"
        self._old: tuple[GroupLayer, int] | None = None

    def redo(self) -> None:
        require_in_document(self.doc, self.layer)
        if not in_document(self.doc, self.parent):
            raise InvalidEditError(f"group {self.parent.name!r} is not in this document")
        if self.parent is self.layer or any(a is self.layer for a in self.parent.ancestors()):
            raise InvalidEditError("a group cannot be moved into itself")
        old = self.doc.index_of(self.layer)
        limit = len(self.parent.children) - (1 if old[0] is self.parent else 0)
        if not 0 <= self.index <= limit:
            raise InvalidEditError(f"index {self.index} is outside 0..{limit} for {self.parent.name!r}")
        self._old = old
        self._move(self.parent, self.index)

    def undo(self) -> None:
        assert self._old is not None
        self._move(*self._old)

    def _move(self, parent: GroupLayer, index: int) -> None:
        active = self.doc.active
        self.doc._raw_remove(self.layer)
        self.doc._raw_insert(self.layer, parent, index)
        if active is not None and in_document(self.doc, active):
            self.doc.set_active(active)


class DuplicateLayer(Command):
    """Insert a copy of ``layer`` directly above it and make it active."""

    def __init__(self, doc: Document, layer: Layer) -> None:
        self.doc = doc
        self.layer = layer
        self.copy: Layer | None = None
        self.label = f"Duplicate Layer {layer.name}"
        self._add: AddLayer | None = None

    def redo(self) -> None:
        if self._add is None:
            require_in_document(self.doc, self.layer)
            parent, index = self.doc.index_of(self.layer)
            self.copy = copy_layer(self.layer, f"{self.layer.name} copy")
            self._add = AddLayer(self.doc, self.copy, parent, index)
        self._add.redo()

    def undo(self) -> None:
        assert self._add is not None
        self._add.undo()

    def nbytes(self) -> int:
        return 0  # the copy shares tiles copy-on-write with the original


class MergeDown(Command):
    """Composite a pixel layer onto the pixel layer below it and remove it.

    The lower layer keeps its own properties; its pixels become what the pair looked like
    (the upper layer's opacity, blend mode and visibility applied).
    """

    def __init__(self, doc: Document, layer: PixelLayer) -> None:
        self.doc = doc
        self.layer = layer
        self.label = f"Merge Down {layer.name}"
        self.below: PixelLayer | None = None
        self._pixels: PutPixels | None = None
        self._remove: RemoveLayer | None = None

    def redo(self) -> None:
        if self._pixels is None:
            self._prepare()
        assert self._pixels is not None and self._remove is not None and self.below is not None
        self._pixels.redo()
        self._remove.redo()
        self.doc.set_active(self.below)

    def undo(self) -> None:
        assert self._pixels is not None and self._remove is not None
        self._remove.undo()
        self._pixels.undo()
        self.doc.set_active(self.layer)

    def _prepare(self) -> None:
        require_in_document(self.doc, self.layer)
        if not isinstance(self.layer, PixelLayer):
            raise InvalidEditError("merge down works on pixel layers; merge a group's layers one by one")
        parent, index = self.doc.index_of(self.layer)
        if index + 1 >= len(parent.children) or not isinstance(parent.children[index + 1], PixelLayer):
            raise InvalidEditError(f"there is no pixel layer below {self.layer.name!r} to merge into")
        below = parent.children[index + 1]
        assert isinstance(below, PixelLayer)
        require_unlocked(below)
        # Porter-Duff ops change the lower layer even where the upper one is empty.
        rect = self.layer.document_bounds().union(below.document_bounds())
        self.below = below
        merged = _merge_pair(self.layer, below, rect) if not rect.empty else None
        if merged is None:
            merged = np.zeros((0, 0, 4), np.uint8)
        self._pixels = PutPixels(self.doc, below, merged, rect.x, rect.y, label=self.label)
        self._remove = RemoveLayer(self.doc, self.layer)

    def nbytes(self) -> int:
        pixels = self._pixels.nbytes() if self._pixels is not None else 0
        return pixels + (self._remove.nbytes() if self._remove is not None else 0)


def _merge_pair(upper: PixelLayer, lower: PixelLayer, rect: Rect) -> np.ndarray:
    """What ``upper`` over ``lower`` looks like over document ``rect`` (straight RGBA uint8)."""
    low = copy_layer(lower)
    up = copy_layer(upper)
    assert isinstance(low, PixelLayer) and isinstance(up, PixelLayer)
    low.opacity, low.blend, low.visible = 1.0, BlendMode.NORMAL, True
    low.x, low.y = document_offset(lower)
    up.x, up.y = document_offset(upper)
    up.visible = upper.effectively_visible()
    return flatten_layers([up, low], rect, rect)

