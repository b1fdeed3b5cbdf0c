"""Undoable commands for every user-visible change to a :class:`~sfumato.canvas.document.Document`.

Structure: :class:`AddLayer`, :class:`RemoveLayer`, :class:`MoveLayer` (reparent and
reorder), :class:`DuplicateLayer`, :class:`MergeDown`. Properties: :class:`SetProperties`
(name, opacity, visibility, lock, blend mode, x/y offset, role and role data) and
:class:`SetRecipe`. Pixels: :class:`ClearLayer`, :class:`PaintCoverage` (fills, erasing a
selection), :class:`PutPixels` (paste, import, placing generated results) and
:class:`PixelEdit` (an edit already applied, such as a brush stroke). Selection:
:class:`SetSelection`.

Pixel commands keep only what changed: a :class:`TilePatch` holds, per touched tile, the
smallest rectangle whose bytes differ, in one version at a time (``swap`` exchanges it with
the surface's), so undoing and redoing cost no extra copies and a small stroke on a huge
layer costs a few kilobytes.

Coordinates: commands take document space; surfaces are in layer space
(document = surface + layer offset).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from sfumato.canvas import pixelops
from sfumato.canvas.blend import BlendMode
from sfumato.canvas.composite import flatten_layers
from sfumato.canvas.geometry import Rect, nonzero_bounds
from sfumato.canvas.history import Command
from sfumato.canvas.layers import (
    ControlSettings,
    GroupLayer,
    Layer,
    PixelLayer,
    Role,
    document_offset,
)
from sfumato.canvas.tiles import TILE, Snapshot, TiledSurface, TileKey, tile_rect

if TYPE_CHECKING:
    from sfumato.canvas.document import Document, Recipe

log = logging.getLogger(__name__)


# -- errors ------------------------------------------------------------------------------
class EditError(Exception):
    """An edit was refused; the message says why and what to do instead."""


class LayerLockedError(EditError):
    def __init__(self, layer: Layer) -> None:
        super().__init__(f"layer {layer.name!r} is locked; unlock it to change its pixels or position")
        self.layer = layer


class InvalidEditError(EditError, ValueError):
    """The edit's arguments make no sense (bad value, layer not in the document, ...)."""


# -- helpers -----------------------------------------------------------------------------
def in_document(doc: Document, layer: Layer) -> bool:
    """Whether ``layer`` is (still) part of ``doc``'s layer tree (the root counts)."""
    return layer is doc.root or any(g is doc.root for g in layer.ancestors())


def _require_in_document(doc: Document, layer: Layer) -> None:
    if layer is doc.root or not in_document(doc, layer):
        raise InvalidEditError(f"{layer.name!r} is not a layer of this document")


def _require_unlocked(layer: Layer) -> None:
    if layer.locked:
        raise LayerLockedError(layer)


def _held_bytes(doc: Document, layer: Layer) -> int:
    """Pixel memory a command keeps alive by holding ``layer`` while it is out of ``doc``."""
    if in_document(doc, layer):
        return 0
    if isinstance(layer, GroupLayer):
        return sum(p.surface.nbytes() for p in layer.pixel_layers())
    return layer.surface.nbytes() if isinstance(layer, PixelLayer) else 0


def copy_layer(layer: Layer, name: str | None = None) -> Layer:
    """A deep copy of ``layer`` (groups with their children); pixels are shared copy-on-write."""
    props: dict[str, Any] = dict(
        opacity=layer.opacity, visible=layer.visible, locked=layer.locked,
        blend=layer.blend, x=layer.x, y=layer.y, extra_attributes=layer.extra_attributes,
    )
    new_name = layer.name if name is None else name
    if isinstance(layer, GroupLayer):
        return GroupLayer(new_name, [copy_layer(c) for c in layer.children], **props)
    if isinstance(layer, PixelLayer):
        generation = None if layer.generation is None else dict(layer.generation)
        return PixelLayer(
            new_name, layer.surface.copy(), role=layer.role, prompt=layer.prompt,
            negative=layer.negative, control=layer.control, generation=generation, **props,
        )
    raise InvalidEditError(f"cannot copy a layer of type {type(layer).__name__}")


# -- pixel patches -----------------------------------------------------------------------
class TilePatch:
    """Pixels of one surface saved for undo: per tile, the rectangle that changed.

    Each part is ``(key, rect, pixels)``: ``rect`` in surface space inside tile ``key``,
    ``pixels`` a ``(h, w, 4)`` straight uint8 copy, or ``None`` for "all zero". The patch
    holds the *other* version of those pixels; :meth:`swap` puts it into the surface and
    keeps what was there, so the same call undoes and redoes.
    """

    __slots__ = ("_parts", "rect")

    def __init__(self, parts: list[tuple[TileKey, Rect, np.ndarray | None]]) -> None:
        self._parts = parts
        self.rect = Rect(0, 0, 0, 0)
        for _, r, _ in parts:
            self.rect = self.rect.union(r)

    @classmethod
    def capture(cls, before: Snapshot, after: TiledSurface, keys: Mapping[TileKey, Rect] | None = None,
                rect: Rect | None = None) -> TilePatch:
        """Compare ``before`` with ``after`` and keep the old pixels that differ.

        Only tiles in ``keys`` (surface-space rects, one per tile) or overlapping ``rect``
        are compared; with neither, every tile of either version is.
        """
        regions: dict[TileKey, Rect] = {}
        if keys is not None:
            regions.update(keys)
        if rect is not None:
            for key in rect.tiles(TILE):
                r = tile_rect(key).intersect(rect)
                regions[key] = regions[key].union(r) if key in regions else r
        if keys is None and rect is None:
            for key in set(before) | set(after.tile_keys()):
                regions[key] = tile_rect(key)
        parts: list[tuple[TileKey, Rect, np.ndarray | None]] = []
        for key, region in regions.items():
            old_tile = before.get(key)
            has_new = after.has_tile(key)
            if old_tile is None and not has_new:
                continue
            new_tile = after.tile(key)
            if old_tile is not None and has_new and new_tile.base is old_tile:
                continue  # the very same (untouched, shared) tile
            ox, oy = key[0] * TILE, key[1] * TILE
            local = region.translate(-ox, -oy).intersect(Rect(0, 0, TILE, TILE))
            sl = local.slices()
            new = new_tile[sl]
            old = old_tile[sl] if old_tile is not None else np.zeros_like(new)
            sub = nonzero_bounds((old != new).any(axis=2))
            if sub.empty:
                continue
            saved = old[sub.slices()]
            parts.append((key, sub.translate(local.x + ox, local.y + oy),
                          saved.copy() if saved.any() else None))
        return cls(parts)

    def swap(self, surface: TiledSurface) -> None:
        """Exchange the stored pixels with the surface's (undo and redo are the same call)."""
        parts: list[tuple[TileKey, Rect, np.ndarray | None]] = []
        for key, r, saved in self._parts:
            sl = r.slices(key[0] * TILE, key[1] * TILE)
            current: np.ndarray | None = None
            if surface.has_tile(key):
                cur = surface.tile(key)[sl]
                current = cur.copy() if cur.any() else None
            if saved is not None:
                surface.writable_tile(key)[sl] = saved
            elif surface.has_tile(key):
                surface.writable_tile(key)[sl] = 0
            parts.append((key, r, current))
        self._parts = parts
        surface.drop_empty_tiles([k for k, _, _ in parts])

    def nbytes(self) -> int:
        return sum(p.nbytes for _, _, p in self._parts if p is not None)

    def __bool__(self) -> bool:
        return bool(self._parts)

    @property
    def tile_keys(self) -> list[TileKey]:
        return list(dict.fromkeys(k for k, _, _ in self._parts))


class _PixelCommand(Command):
    """Base of pixel edits: ``_paint`` runs once; afterwards undo/redo swap a :class:`TilePatch`."""

    def __init__(self, doc: Document, layer: PixelLayer, label: str) -> None:
        if not isinstance(layer, PixelLayer):
            raise InvalidEditError(f"{layer.name!r} is a group; pick a pixel layer to edit pixels")
        self.doc = doc
        self.layer = layer
        self.label = label
        self.patch: TilePatch | None = None

    def _paint(self) -> Rect | None:
        """Change the surface; return the surface-space rect that may have changed (None: all)."""
        raise NotImplementedError

    def _release_inputs(self) -> None:
        """Drop inputs that the patch makes redundant (big arrays)."""

    def redo(self) -> None:
        if self.patch is None:
            _require_in_document(self.doc, self.layer)
            _require_unlocked(self.layer)
            before = self.layer.surface.snapshot()
            rect = self._paint()
            self.patch = TilePatch.capture(before, self.layer.surface, rect=rect)
            self._release_inputs()
        else:
            self.patch.swap(self.layer.surface)
        self._notify()

    def undo(self) -> None:
        assert self.patch is not None, "undo before redo"
        self.patch.swap(self.layer.surface)
        self._notify()

    def _notify(self) -> None:
        if self.patch:
            self.doc.notify_pixels(self.layer, self.patch.rect.translate(*document_offset(self.layer)))

    def nbytes(self) -> int:
        return self.patch.nbytes() if self.patch is not None else 0

    @property
    def changed_rect(self) -> Rect:
        """Surface-space rect of the changed pixels (empty when nothing changed)."""
        return self.patch.rect if self.patch is not None else Rect(0, 0, 0, 0)


class PixelEdit(_PixelCommand):
    """An edit already applied to the surface (a brush stroke), recorded as its patch."""

    def __init__(self, doc: Document, layer: PixelLayer, patch: TilePatch, label: str = "Paint") -> None:
        super().__init__(doc, layer, label)
        self.patch = patch


def _for_each_tile_region(surface_rect: Rect) -> list[tuple[TileKey, Rect]]:
    return [(key, tile_rect(key).intersect(surface_rect)) for key in surface_rect.tiles(TILE)]


class ClearLayer(_PixelCommand):
    """Make a layer transparent; with a selection, only the selected part (by its coverage)."""

    def __init__(self, doc: Document, layer: PixelLayer, use_selection: bool = True) -> None:
        super().__init__(doc, layer, "Clear Layer")
        self._selection = doc.selection if use_selection else None

    def _paint(self) -> Rect | None:
        surface = self.layer.surface
        if self._selection is None:
            surface.clear()
            return None
        sel = self._selection
        lx, ly = document_offset(self.layer)
        for key in surface.tile_keys():
            tr = tile_rect(key)
            doc_r = tr.translate(lx, ly).intersect(Rect(0, 0, sel.shape[1], sel.shape[0]))
            if doc_r.empty:
                continue
            cov = sel[doc_r.slices()]
            if not cov.any():
                continue
            s_r = doc_r.translate(-lx, -ly)
            tile = surface.writable_tile(key)
            sl = s_r.slices(tr.x, tr.y)
            tile[sl] = pixelops.erase(tile[sl], cov)
        surface.drop_empty_tiles()
        return None

    def _release_inputs(self) -> None:
        self._selection = None


class PaintCoverage(_PixelCommand):
    """Paint an opaque colour (or erase, when ``color`` is None) through a coverage array.

    ``coverage`` is float32 ``(h, w)`` in [0, 1] placed at document ``(x, y)``; it is
    multiplied by ``opacity``. Used by flood fill, fill selection and erase selection.
    """

    def __init__(self, doc: Document, layer: PixelLayer, coverage: np.ndarray, x: int = 0, y: int = 0,
                 color: tuple[int, int, int] | None = (0, 0, 0), opacity: float = 1.0,
                 label: str = "Fill") -> None:
        super().__init__(doc, layer, label)
        if coverage.ndim != 2:
            raise InvalidEditError(f"coverage must be a 2-D array, got shape {coverage.shape}")
        if not 0.0 <= opacity <= 1.0:
            raise InvalidEditError(f"opacity {opacity} is out of range 0..1")
        self._coverage: np.ndarray | None = coverage.astype(np.float32, copy=False)
        self._x, self._y = x, y
        self._color = color
        self._opacity = float(opacity)

    def _paint(self) -> Rect | None:
        assert self._coverage is not None
        cov_all = self._coverage
        h, w = cov_all.shape
        doc_rect = Rect(self._x, self._y, w, h)
        ox, oy = document_offset(self.layer)
        s_rect = doc_rect.translate(-ox, -oy)
        surface = self.layer.surface
        for key, r in _for_each_tile_region(s_rect):
            cov = cov_all[r.slices(s_rect.x, s_rect.y)]
            if self._opacity != 1.0:
                cov = cov * np.float32(self._opacity)
            if not cov.any():
                continue
            if self._color is None and not surface.has_tile(key):
                continue
            tile = surface.writable_tile(key)
            sl = r.slices(key[0] * TILE, key[1] * TILE)
            if self._color is None:
                tile[sl] = pixelops.erase(tile[sl], cov)
            else:
                tile[sl] = pixelops.paint_color(tile[sl], self._color, cov)
        surface.drop_empty_tiles([k for k, _ in _for_each_tile_region(s_rect)])
        return s_rect

    def _release_inputs(self) -> None:
        self._coverage = None


class PutPixels(_PixelCommand):
    """Place straight RGBA uint8 ``pixels`` at document ``(x, y)`` (paste, import, AI results).

    With ``mask`` (float32 ``(h, w)`` in [0, 1]) the new pixels are mixed in through it
    (soft paste-back of an inpaint result); with ``over=True`` they are composited
    source-over instead of replacing what is there.
    """

    def __init__(self, doc: Document, layer: PixelLayer, pixels: np.ndarray, x: int = 0, y: int = 0,
                 mask: np.ndarray | None = None, over: bool = False,
                 label: str = "Set Pixels") -> None:
        super().__init__(doc, layer, label)
        if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
            raise InvalidEditError(
                f"pixels must be (h, w, 4) uint8 straight RGBA, got {pixels.shape} {pixels.dtype}"
            )
        if mask is not None and mask.shape != pixels.shape[:2]:
            raise InvalidEditError(f"mask shape {mask.shape} does not match pixels {pixels.shape[:2]}")
        self._pixels: np.ndarray | None = pixels
        self._mask = None if mask is None else mask.astype(np.float32, copy=False)
        self._x, self._y = x, y
        self._over = over

    def _paint(self) -> Rect | None:
        assert self._pixels is not None
        px = self._pixels
        ox, oy = document_offset(self.layer)
        s_rect = Rect(self._x - ox, self._y - oy, px.shape[1], px.shape[0])
        surface = self.layer.surface
        if self._mask is None and not self._over:
            surface.write(s_rect.x, s_rect.y, px)
        else:
            ones = None
            for key, r in _for_each_tile_region(s_rect):
                src = px[r.slices(s_rect.x, s_rect.y)]
                cov = self._mask[r.slices(s_rect.x, s_rect.y)] if self._mask is not None else None
                if cov is not None and not cov.any():
                    continue
                if self._over and not src[..., 3].any():
                    continue
                tile = surface.writable_tile(key)
                sl = r.slices(key[0] * TILE, key[1] * TILE)
                if self._over:
                    tile[sl] = pixelops.blend_over(tile[sl], src, cov)
                else:
                    if cov is None:
                        ones = np.ones(src.shape[:2], np.float32) if ones is None else ones
                    tile[sl] = pixelops.mix(tile[sl], src, cov if cov is not None else ones)
        surface.drop_empty_tiles([k for k, _ in _for_each_tile_region(s_rect)])
        return s_rect

    def _release_inputs(self) -> None:
        self._pixels = None
        self._mask = None


# -- structure ---------------------------------------------------------------------------
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
        return _held_bytes(self.doc, self.layer)


class RemoveLayer(Command):
    def __init__(self, doc: Document, layer: Layer) -> None:
        self.doc = doc
        self.layer = layer
        self.label = f"Remove Layer {layer.name}"
        self._where: tuple[GroupLayer, int] | None = None
        self._active: Layer | None = None

    def redo(self) -> None:
        _require_in_document(self.doc, self.layer)
        self._active = self.doc.active
        self._where = self.doc._raw_remove(self.layer)

    def undo(self) -> None:
        assert self._where is not None
        parent, index = self._where
        self.doc._raw_insert(self.layer, parent, index)
        if self._active is not None and in_document(self.doc, self._active):
            self.doc.set_active(self._active)

    def nbytes(self) -> int:
        return _held_bytes(self.doc, self.layer)


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
        _require_in_document(self.doc, self.layer)
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
            _require_in_document(self.doc, self.layer)
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
        _require_in_document(self.doc, self.layer)
        if not isinstance(self.layer, PixelLayer):
            raise InvalidEditError("merge down works on pixel layers; merge a group's layers one by one")
        parent, index = self.doc.index_of(self.layer)
        if index + 1 >= len(parent.children) or not isinstance(parent.children[index + 1], PixelLayer):
            raise InvalidEditError(f"there is no pixel layer below {self.layer.name!r} to merge into")
        below = parent.children[index + 1]
        assert isinstance(below, PixelLayer)
        _require_unlocked(below)
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


# -- properties --------------------------------------------------------------------------
def _check_opacity(value: Any) -> float:
    v = float(value)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        raise InvalidEditError(f"opacity must be between 0 and 1, got {value!r}")
    return v


def _check_type(kind: type | tuple[type, ...], name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidEditError(f"{name} cannot be {value!r}")
        return value
    return check


def _check_generation(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidEditError(f"generation parameters must be a dict or None, got {type(value).__name__}")
    return None if value is None else dict(value)


_LAYER_PROPERTIES: dict[str, Callable[[Any], Any]] = {
    "name": _check_type(str, "a layer name"),
    "opacity": _check_opacity,
    "visible": _check_type(bool, "visible"),
    "locked": _check_type(bool, "locked"),
    "blend": _check_type(BlendMode, "a blend mode"),
    "x": _check_type(int, "an x offset"),
    "y": _check_type(int, "a y offset"),
}
_PIXEL_PROPERTIES: dict[str, Callable[[Any], Any]] = {
    "role": _check_type(Role, "a layer role"),
    "prompt": _check_type(str, "a prompt"),
    "negative": _check_type(str, "a negative prompt"),
    "control": _check_type((ControlSettings, type(None)), "control settings"),
    "generation": _check_generation,
}
_LABELS = {
    "name": "Rename Layer", "opacity": "Layer Opacity", "visible": "Layer Visibility",
    "locked": "Lock Layer", "blend": "Blend Mode", "x": "Move Layer", "y": "Move Layer",
    "role": "Layer Role", "prompt": "Region Prompt", "negative": "Region Negative Prompt",
    "control": "Control Settings", "generation": "Generation Parameters",
}
PROPERTY_NAMES = frozenset(_LAYER_PROPERTIES) | frozenset(_PIXEL_PROPERTIES)


class SetProperties(Command):
    """Set one or more layer properties at once (e.g. ``x`` and ``y`` when moving a layer).

    Consecutive commands on the same layer and property names with the same non-None
    ``merge_id`` fold into one undo step (a slider drag, a layer drag, typing a prompt).
    """

    def __init__(self, doc: Document, layer: Layer, values: Mapping[str, Any],
                 merge_id: object | None = None) -> None:
        if not values:
            raise InvalidEditError("no property to set")
        checked: dict[str, Any] = {}
        for name, value in values.items():
            if name in _LAYER_PROPERTIES:
                checked[name] = _LAYER_PROPERTIES[name](value)
            elif name in _PIXEL_PROPERTIES:
                if not isinstance(layer, PixelLayer):
                    raise InvalidEditError(f"{name!r} is a pixel layer property; {layer.name!r} is a group")
                checked[name] = _PIXEL_PROPERTIES[name](value)
            else:
                raise InvalidEditError(
                    f"unknown layer property {name!r}; known: {', '.join(sorted(PROPERTY_NAMES))}"
                )
        if (
            isinstance(layer, PixelLayer)
            and checked.get("role") is Role.CONTROL
            and "control" not in checked
            and layer.control is None
        ):
            checked["control"] = ControlSettings()
        self.doc = doc
        self.layer = layer
        self.new = checked
        self.old: dict[str, Any] = {}
        self.merge_id = merge_id
        first = next(iter(checked))
        self.label = _LABELS[first]
        if first == "visible":
            self.label = "Show Layer" if checked[first] else "Hide Layer"
        elif first == "locked" and not checked[first]:
            self.label = "Unlock Layer"

    def redo(self) -> None:
        _require_in_document(self.doc, self.layer)
        moving = "x" in self.new or "y" in self.new
        if moving and self.layer.locked and self.new.get("locked", True):
            raise LayerLockedError(self.layer)
        self.old = {name: getattr(self.layer, name) for name in self.new}
        for name, value in self.new.items():
            self.doc._raw_set(self.layer, name, value)

    def undo(self) -> None:
        for name, value in self.old.items():
            self.doc._raw_set(self.layer, name, value)

    def merge_with(self, other: Command) -> bool:
        if (
            isinstance(other, SetProperties)
            and self.merge_id is not None
            and other.merge_id == self.merge_id
            and other.layer is self.layer
            and other.new.keys() == self.new.keys()
        ):
            self.new = dict(other.new)
            return True
        return False


_RECIPE_LABEL = "Generation Settings"


class SetRecipe(Command):
    """Change document-wide generation settings (prompt, seed, steps, ...)."""

    def __init__(self, doc: Document, values: Mapping[str, Any], merge_id: object | None = None) -> None:
        from sfumato.canvas.document import Recipe

        known = set(Recipe.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise InvalidEditError(
                f"unknown generation setting(s) {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        self.doc = doc
        self.new = dict(values)
        self.old: Recipe | None = None
        self.merge_id = merge_id
        self.label = "Prompt" if set(values) <= {"prompt", "negative"} else _RECIPE_LABEL

    def redo(self) -> None:
        self.old = self.doc.recipe
        self.doc._raw_set_recipe(replace(self.doc.recipe, **self.new))

    def undo(self) -> None:
        assert self.old is not None
        self.doc._raw_set_recipe(self.old)

    def merge_with(self, other: Command) -> bool:
        if (
            isinstance(other, SetRecipe)
            and self.merge_id is not None
            and other.merge_id == self.merge_id
            and other.new.keys() == self.new.keys()
        ):
            self.new = dict(other.new)
            return True
        return False


# -- selection ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredCoverage:
    """A compact copy of a document selection: the crop holding every non-zero value.

    ``data`` is a float32 array for ``rect``, or a float for a constant crop (select all).
    """

    shape: tuple[int, int]
    rect: Rect
    data: np.ndarray | float

    @classmethod
    def store(cls, coverage: np.ndarray) -> StoredCoverage:
        h, w = coverage.shape
        rect = nonzero_bounds(coverage)
        if rect.empty:
            return cls((h, w), Rect(0, 0, 0, 0), 0.0)
        crop = coverage[rect.slices()]
        first = float(crop.flat[0])
        if (crop == first).all():
            return cls((h, w), rect, first)
        return cls((h, w), rect, crop.astype(np.float32, copy=True))

    def load(self) -> np.ndarray:
        out = np.zeros(self.shape, np.float32)
        if not self.rect.empty:
            out[self.rect.slices()] = self.data
        return out

    @property
    def nbytes(self) -> int:
        return self.data.nbytes if isinstance(self.data, np.ndarray) else 0


class SetSelection(Command):
    """Replace the document's selection (float32 ``(height, width)`` coverage, or None)."""

    def __init__(self, doc: Document, coverage: np.ndarray | None, label: str = "Select") -> None:
        if coverage is not None:
            if coverage.shape != (doc.height, doc.width):
                raise InvalidEditError(
                    f"selection shape {coverage.shape} does not match the document "
                    f"({doc.height}, {doc.width})"
                )
            coverage = np.clip(coverage.astype(np.float32, copy=False), 0.0, 1.0)
        self.doc = doc
        self.label = label
        self._first: np.ndarray | None = coverage
        self._new: StoredCoverage | None = None
        self._old: StoredCoverage | None = None
        self._new_is_none = coverage is None
        self._old_is_none = True

    def redo(self) -> None:
        if self._new is None and not self._new_is_none:
            assert self._first is not None
            self._new = StoredCoverage.store(self._first)
        self._old_is_none = self.doc.selection is None
        if self.doc.selection is not None and self._old is None:
            self._old = StoredCoverage.store(self.doc.selection)
        if self._first is not None:
            value: np.ndarray | None = self._first
            self._first = None  # the document now owns it
        else:
            value = None if self._new is None else self._new.load()
        self.doc._raw_set_selection(value)

    def undo(self) -> None:
        self.doc._raw_set_selection(
            None if self._old_is_none or self._old is None else self._old.load()
        )

    def nbytes(self) -> int:
        return (self._new.nbytes if self._new else 0) + (self._old.nbytes if self._old else 0)
