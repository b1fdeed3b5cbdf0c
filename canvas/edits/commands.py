"""What every undoable command shares: the refusals and the checks made before an edit.

A command is a :class:`~sfumato.canvas.model.history.Command` run through ``doc.execute``; the
commands are grouped by what they change:

- :mod:`sfumato.canvas.edits.structure_commands` — the layer tree: :class:`AddLayer`,
  :class:`RemoveLayer`, :class:`MoveLayer` (reparent and reorder), :class:`DuplicateLayer`,
  :class:`MergeDown`.
- :mod:`sfumato.canvas.edits.property_commands` — one layer's properties: :class:`SetProperties`
  (name, opacity, visibility, lock, blend mode, x/y offset, role and role data).
- :mod:`sfumato.canvas.edits.pixel_commands` — a layer's pixels, kept for undo as a
  :class:`TilePatch`: :class:`ClearLayer`, :class:`PaintCoverage` (fills, erasing a
  selection), :class:`PutPixels` (paste, import, placing generated results) and
  :class:`PixelEdit` (an edit already applied, such as a brush stroke).
- :mod:`sfumato.canvas.edits.document_commands` — the document's own state:
  :class:`SetRecipe` and :class:`SetSelection`.

:mod:`sfumato.canvas.editing` names each of them as a verb (``editing.add_layer(doc,
layer)``). The document (the model) imports none of them: commands call its ``_raw_*``
mutators, never the other way round.

Coordinates: commands take document space; surfaces are in layer space
(document = surface + layer offset).
"""

from __future__ import annotations

from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer


# -- errors ------------------------------------------------------------------------------
class EditError(Exception):
    """An edit was refused; the message says why and what to do instead."""


class LayerLockedError(EditError):
    def __init__(self, layer: Layer) -> None:
        super().__init__(f"layer {layer.name!r} is locked; unlock it to change its pixels or position")
        self.layer = layer


class InvalidEditError(EditError, ValueError):
    """The edit's arguments make no sense (bad value, layer not in the document, ...)."""


# -- checks ------------------------------------------------------------------------------
def in_document(doc: Document, layer: Layer) -> bool:
    """Whether ``layer`` is (still) part of ``doc``'s layer tree (the root counts)."""
    return layer is doc.root or any(g is doc.root for g in layer.ancestors())


def require_in_document(doc: Document, layer: Layer) -> None:
    if layer is doc.root or not in_document(doc, layer):
        raise InvalidEditError(f"{layer.name!r} is not a layer of this document")


def require_unlocked(layer: Layer) -> None:
    if layer.locked:
        raise LayerLockedError(layer)


def held_bytes(doc: Document, layer: Layer) -> int:
    """Pixel memory a command keeps alive by holding ``layer`` while it is out of ``doc``."""
    if in_document(doc, layer):
        return 0
    if isinstance(layer, GroupLayer):
        return sum(p.surface.nbytes() for p in layer.pixel_layers())
    return layer.surface.nbytes() if isinstance(layer, PixelLayer) else 0
