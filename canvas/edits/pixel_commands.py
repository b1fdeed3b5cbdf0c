"""Undoable edits of a layer's pixels, and the :class:`TilePatch` that keeps them for undo.

:class:`ClearLayer`, :class:`PaintCoverage` (fills, erasing a selection), :class:`PutPixels`
(paste, import, placing generated results) and :class:`PixelEdit` (an edit already
applied, such as a brush stroke: :class:`sfumato.canvas.paint.brush.Stroke` records one).

A pixel command keeps only what changed: a :class:`TilePatch` holds, per touched tile, the
smallest rectangle whose bytes differ, in one version at a time (``swap`` exchanges it with
the surface's), so undoing and redoing cost no extra copies and a small stroke on a huge
layer costs a few kilobytes.

Pixels are straight RGBA uint8. Coordinates: commands take document space; surfaces are in
layer space (document = surface + layer offset).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sfumato.canvas.edits.commands import InvalidEditError, require_in_document, require_unlocked
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect, nonzero_bounds
from sfumato.canvas.model.history import Command
from sfumato.canvas.model.layers import PixelLayer, document_offset
from sfumato.canvas.model.tiles import TILE, Snapshot, TiledSurface, TileKey, tile_rect
from sfumato.canvas.pixels import pixelops


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
            require_in_document(self.doc, self.layer)
            require_unlocked(self.layer)
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

