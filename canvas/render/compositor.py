"""The cached, dirty-tracking :class:`Compositor` of a document, for the window.

It composites with the same semantics as :func:`sfumato.canvas.render.composite.flatten` (see that
module), caches per-tile projections, and draws inpaint-mask, region and control layers as
tinted overlays above the picture (:func:`overlay_pixels`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
from sfumato.canvas.model.document import (
    ActiveLayerChanged,
    Document,
    DocumentReset,
    LayerPropertyChanged,
    PixelsChanged,
    StructureChanged,
)
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, Role, document_offset
from sfumato.canvas.model.tiles import TILE
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.pixels.blendmath import (
    NEEDS_STRAIGHT,
    clears_without_source,
    over,
    unpremultiply,
)
from sfumato.canvas.render.composite import (
    PreparedSource,
    StackRenderer,
    blend_pixels,
    doc_tiles,
    effective_opacity,
    fetch,
    is_image_layer,
)

TileKey = tuple[int, int]

# Layer properties that do not change a single composited pixel.
_SILENT_PROPERTIES = frozenset(
    {"name", "locked", "prompt", "negative", "control", "reference", "generation"}
)

_OVERLAY_MASK_RGB = (255, 32, 32)
_OVERLAY_MASK_ALPHA = 128  # of 256: the mask shows at half strength
_OVERLAY_REGION_ALPHA = 102
_OVERLAY_CONTROL_ALPHA = 128


def overlay_color(layer: PixelLayer) -> tuple[int, int, int]:
    """The tint a region layer is shown in: a hue picked from the layer's id (golden-ratio
    steps, so neighbouring ids get well-separated hues)."""
    hue_turns = (layer.id * 0.618033988749895) % 1.0
    h6 = hue_turns * 6.0
    sector = int(h6)
    f = h6 - sector
    v, p = 235, 60
    q = int(p + (v - p) * (1 - f))
    t = int(p + (v - p) * f)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][sector % 6]


def overlay_pixels(layer: PixelLayer, px: np.ndarray) -> np.ndarray:
    """How a non-image layer looks in the window: inpaint masks red, regions a per-layer
    hue, control and reference layers as they are, each at reduced strength (straight RGBA
    uint8)."""
    out = np.empty_like(px)
    if layer.role in (Role.CONTROL, Role.REFERENCE):
        out[..., :3] = px[..., :3]
        strength = _OVERLAY_CONTROL_ALPHA
    else:
        rgb = _OVERLAY_MASK_RGB if layer.role is Role.INPAINT_MASK else overlay_color(layer)
        out[..., :3] = np.array(rgb, np.uint8)
        strength = _OVERLAY_MASK_ALPHA if layer.role is Role.INPAINT_MASK else _OVERLAY_REGION_ALPHA
    out[..., 3] = (px[..., 3].astype(np.uint16) * strength >> 8).astype(np.uint8)
    return out


class _Stage:
    """One root-level step of the window's composite: a root child (image pass) or one
    non-image layer drawn as an overlay above the picture."""

    __slots__ = ("layer", "overlay")

    def __init__(self, layer: Layer, overlay: bool) -> None:
        self.layer = layer
        self.overlay = overlay


class Compositor:
    """A cached, dirty-tracking compositor of a document, for the window.

    Subscribes to ``doc.changed``; call :meth:`close` to stop. :meth:`tile` returns the
    composited ``(256, 256, 4)`` straight-alpha RGBA uint8 document tile ``(tx, ty)``
    (document pixels ``[tx*256, tx*256+256) × [ty*256, ty*256+256)``; pixels outside the
    document are transparent), re-rendering only the parts changed since it was last
    asked for. :meth:`take_dirty` lists the document-space rects changed since its last
    call, so the view repaints only those.

    Projections: for tiles the active layer is painted on, the composite of everything
    below the active layer's root-level stage, and (when every visible stage above it is
    a normal/source-over layer, which makes it exact) of everything above it, are cached
    as premultiplied float32 tiles (at most ``projection_tiles`` of each, least recently
    used dropped). A brush dab then costs one layer's blend plus one "over" on the dab's
    rect. With non-associative modes above, the stages above are recomposited — still
    only over the dab's rect, from float conversions of their pixels kept between dabs
    (at most ``source_cache_bytes``).

    ``overlays=True`` also shows non-image layers (inpaint mask, region, control, reference) above
    the picture as tinted overlays (:func:`overlay_pixels`); :func:`flatten` never does.
    """

    def __init__(
        self,
        doc: Document,
        *,
        overlays: bool = False,
        projection_tiles: int = 64,
        source_cache_bytes: int = 128 << 20,
    ) -> None:
        self.doc = doc
        self._overlays = overlays
        self._projection_tiles = max(1, projection_tiles)
        self._source_cache_bytes = max(0, source_cache_bytes)
        self._image = StackRenderer(is_image_layer)
        self._final: dict[TileKey, np.ndarray] = {}
        self._stale: dict[TileKey, Rect] = {}
        self._dirty: dict[TileKey, Rect] = {}
        self._below: OrderedDict[TileKey, np.ndarray | None] = OrderedDict()
        self._above: OrderedDict[TileKey, np.ndarray | None] = OrderedDict()
        self._hot: set[TileKey] = set()
        # (layer id, tile) -> (layer offset, converted pixels or None for "no pixels")
        self._sources: OrderedDict[
            tuple[int, TileKey], tuple[tuple[int, int], PreparedSource | None]
        ] = OrderedDict()
        self._sources_bytes = 0
        self._positions: dict[int, tuple[int, int]] = {}  # layer id -> document offset
        self._modes: dict[int, BlendMode] = {}  # layer id -> blend mode last seen
        self._stages: list[_Stage] | None = None
        self._pivot: int | None = None
        self._pivot_known = False
        self._remember_positions(doc.root)
        doc.changed.connect(self._on_event)

    def close(self) -> None:
        """Stop following the document and drop the caches."""
        self.doc.changed.disconnect(self._on_event)
        self._final.clear()
        self._sources.clear()
        self._sources_bytes = 0
        self._drop_projections()

    # -- public ------------------------------------------------------------------------
    @property
    def overlays(self) -> bool:
        return self._overlays

    @overlays.setter
    def overlays(self, value: bool) -> None:
        if value != self._overlays:
            self._overlays = value
            self._stages = None
            self._drop_projections()
            self.invalidate()

    def invalidate(self, rect: Rect | None = None) -> None:
        """Mark ``rect`` (document space; default everything) for recompositing."""
        self._invalidate_rect(self.doc.rect if rect is None else rect, keep_projections=False)

    def take_dirty(self) -> list[Rect]:
        """Document-space rects changed since the last call (at most one per tile)."""
        dirty = list(self._dirty.values())
        self._dirty.clear()
        return dirty

    def tile(self, tx: int, ty: int) -> np.ndarray:
        """The composited document tile ``(tx, ty)``: ``(256, 256, 4)`` straight RGBA uint8.

        The returned array is the cache's own, read-only; it is updated in place by later
        calls, so copy it if you keep it across edits.
        """
        key = (tx, ty)
        trect = Rect(tx * TILE, ty * TILE, TILE, TILE)
        area = trect.intersect(self.doc.rect)
        cached = self._final.get(key)
        if cached is None:
            cached = np.zeros((TILE, TILE, 4), np.uint8)
            if not area.empty:
                self._render_into(cached, key, area)
            self._final[key] = cached
            self._stale.pop(key, None)
        else:
            stale = self._stale.pop(key, None)
            if stale is not None:
                cached.setflags(write=True)
                self._render_into(cached, key, stale)
        cached.setflags(write=False)
        return cached

    def render(self, rect: Rect | None = None) -> np.ndarray:
        """The composite over ``rect`` (document space; default the whole document) as a
        new ``(h, w, 4)`` straight RGBA uint8 array, from (and filling) the tile cache."""
        rect = self.doc.rect if rect is None else rect
        out = np.zeros((max(rect.h, 0), max(rect.w, 0), 4), np.uint8)
        if rect.empty:
            return out
        for piece in doc_tiles(rect.intersect(self.doc.rect)):
            tx, ty = piece.x // TILE, piece.y // TILE
            t = self.tile(tx, ty)
            out[piece.slices(rect.x, rect.y)] = t[piece.slices(tx * TILE, ty * TILE)]
        return out

    def cached_bytes(self) -> int:
        """Memory held by the caches (final tiles and projections), in bytes."""
        total = sum(t.nbytes for t in self._final.values()) + self._sources_bytes
        for proj in (self._below, self._above):
            total += sum(p.nbytes for p in proj.values() if p is not None)
        return total

    # -- rendering -----------------------------------------------------------------------
    def _render_into(self, out_tile: np.ndarray, key: TileKey, region: Rect) -> None:
        acc = self._composite(key, region)
        dst = out_tile[region.slices(key[0] * TILE, key[1] * TILE)]
        if acc is None:
            dst[...] = 0
        else:
            unpremultiply(acc, dst)

    def _stage_list(self) -> list[_Stage]:
        if self._stages is None:
            stages = [_Stage(child, False) for child in reversed(self.doc.root.children)]
            if self._overlays:
                overlay_layers = [
                    layer for layer in self.doc.pixel_layers() if not layer.role.is_image
                ]
                stages += [_Stage(layer, True) for layer in reversed(overlay_layers)]
            self._stages = stages
            self._pivot_known = False
        return self._stages

    def _pivot_index(self) -> int | None:
        self._stage_list()
        if not self._pivot_known:
            self._pivot = self._stage_index(self.doc.active)
            self._pivot_known = True
        return self._pivot

    def _stage_index(self, layer: Layer | None) -> int | None:
        """Index of the stage whose output ``layer`` changes, or None if it changes none."""
        if layer is None:
            return None
        stages = self._stage_list()
        if isinstance(layer, PixelLayer) and not layer.role.is_image:
            if not self._overlays:
                return None
            for i, stage in enumerate(stages):
                if stage.overlay and stage.layer is layer:
                    return i
            return None
        top = layer
        for group in layer.ancestors():
            if group is self.doc.root:
                break
            top = group
        for i, stage in enumerate(stages):
            if not stage.overlay and stage.layer is top:
                return i
        return None

    def _apply(self, acc: np.ndarray | None, stage: _Stage, region: Rect) -> np.ndarray | None:
        layer = stage.layer
        if not stage.overlay:
            return self._image.apply(acc, layer, region)
        assert isinstance(layer, PixelLayer)
        if not layer.effectively_visible():
            return acc
        opacity = effective_opacity(layer)
        if opacity <= 0:
            return acc
        ox, oy = document_offset(layer)
        px = fetch(layer.surface, region.translate(-ox, -oy))
        if px is None:
            return acc
        return blend_pixels(acc, overlay_pixels(layer, px), BlendMode.NORMAL, opacity)

    def _composite(self, key: TileKey, region: Rect) -> np.ndarray | None:
        stages = self._stage_list()
        pivot = self._pivot_index()
        if pivot is None or key not in self._hot:
            acc: np.ndarray | None = None
            for stage in stages:
                acc = self._apply(acc, stage, region)
            return acc
        tile_area = Rect(key[0] * TILE, key[1] * TILE, TILE, TILE).intersect(self.doc.rect)
        below = self._projection(self._below, key, tile_area, stages[:pivot])
        rows, cols = region.slices(tile_area.x, tile_area.y)
        acc = None if below is None else below[:, rows, cols].copy()
        acc = self._apply(acc, stages[pivot], region)
        above_stages = stages[pivot + 1 :]
        if self._associative(above_stages):
            above = self._projection(self._above, key, tile_area, above_stages)
            if above is None:
                return acc
            top = above[:, rows, cols]
            if acc is None:
                return top.copy()
            over(acc, top)
            return acc
        for stage in above_stages:
            acc = self._apply_prepared(acc, stage, key, tile_area, region)
        return acc

    def _apply_prepared(
        self,
        acc: np.ndarray | None,
        stage: _Stage,
        key: TileKey,
        tile_area: Rect,
        region: Rect,
    ) -> np.ndarray | None:
        """:meth:`_apply` for a stage above the active layer, reusing its pixels' float
        conversions from dab to dab (root-level pixel layers; others as usual)."""
        layer = stage.layer
        if stage.overlay or not isinstance(layer, PixelLayer) or not self._source_cache_bytes:
            return self._apply(acc, stage, region)
        if not layer.visible or not is_image_layer(layer):
            return acc
        mode = layer.blend
        opacity = effective_opacity(layer)
        prepared = self._prepared(layer, key, tile_area) if opacity > 0 else None
        if prepared is None:
            return None if clears_without_source(mode) else acc
        box = region.slices(tile_area.x, tile_area.y)
        return blend_pixels(acc, prepared.pixels[box], mode, opacity, prepared, box)

    def _prepared(self, layer: PixelLayer, key: TileKey, tile_area: Rect) -> PreparedSource | None:
        offset = (layer.x, layer.y)  # a root-level layer: its offset is document space
        entry = self._sources.get((layer.id, key))
        if entry is not None and entry[0] == offset:
            self._sources.move_to_end((layer.id, key))
            prepared = entry[1]
        else:
            self._forget_source(layer.id, key)
            px = fetch(layer.surface, tile_area.translate(-offset[0], -offset[1]))
            prepared = None if px is None or not px[..., 3].any() else PreparedSource(px.copy())
            self._sources[(layer.id, key)] = (offset, prepared)
            if prepared is not None:
                self._sources_bytes += prepared.nbytes
        if prepared is not None and layer.blend in NEEDS_STRAIGHT and not prepared.has_straight:
            prepared.straight()
            self._sources_bytes += prepared.straight().nbytes
        while self._sources_bytes > self._source_cache_bytes and len(self._sources) > 1:
            _, (_, old) = self._sources.popitem(last=False)
            if old is not None:
                self._sources_bytes -= old.nbytes
        return prepared

    def _forget_source(self, layer_id: int, key: TileKey) -> None:
        entry = self._sources.pop((layer_id, key), None)
        if entry is not None and entry[1] is not None:
            self._sources_bytes -= entry[1].nbytes

    def _associative(self, stages: list[_Stage]) -> bool:
        """Whether these stages composite exactly as one source-over layer (all normal)."""
        return all(
            s.overlay
            or not s.layer.visible
            or not is_image_layer(s.layer)
            or s.layer.blend is BlendMode.NORMAL
            for s in stages
        )

    def _projection(
        self,
        cache: OrderedDict[TileKey, np.ndarray | None],
        key: TileKey,
        tile_area: Rect,
        stages: list[_Stage],
    ) -> np.ndarray | None:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        acc: np.ndarray | None = None
        for stage in stages:
            acc = self._apply(acc, stage, tile_area)
        cache[key] = acc
        while len(cache) > self._projection_tiles:
            cache.popitem(last=False)
        return acc

    # -- invalidation ----------------------------------------------------------------------
    def _drop_projections(self) -> None:
        self._below.clear()
        self._above.clear()
        self._hot.clear()
        self._pivot_known = False

    def _invalidate_rect(self, rect: Rect, *, keep_projections: bool, hot: bool = False) -> None:
        area = rect.intersect(self.doc.rect)
        if area.empty:
            return
        for key in area.tiles(TILE):
            sub = Rect(key[0] * TILE, key[1] * TILE, TILE, TILE).intersect(area)
            if key in self._final:
                self._stale[key] = self._stale[key].union(sub) if key in self._stale else sub
            self._dirty[key] = self._dirty[key].union(sub) if key in self._dirty else sub
            if hot:
                self._hot.add(key)
            elif not keep_projections:
                self._below.pop(key, None)
                self._above.pop(key, None)

    def _invalidate_tiles(self, keys: Iterable[TileKey], *, keep_projections: bool) -> None:
        for tx, ty in keys:
            self._invalidate_rect(
                Rect(tx * TILE, ty * TILE, TILE, TILE), keep_projections=keep_projections
            )

    def _remember_positions(self, layer: Layer) -> None:
        """Note where ``layer`` (and everything in it) sits and how it blends, so a later
        move or mode change can also repaint where it was."""
        self._modes[layer.id] = layer.blend
        if isinstance(layer, GroupLayer):
            for child in layer.children:
                self._remember_positions(child)
        else:
            self._positions[layer.id] = document_offset(layer)

    def _footprint(self, layer: Layer, *, remembered: bool) -> set[TileKey]:
        """Document tiles ``layer`` can change: where its pixels are (at its remembered or
        current position), or every tile for ops that clear where they have no source."""
        if clears_without_source(layer.blend):
            return set(self.doc.rect.tiles(TILE))
        keys: set[TileKey] = set()
        if isinstance(layer, GroupLayer):
            for child in layer.children:
                keys |= self._footprint(child, remembered=remembered)
            return keys
        assert isinstance(layer, PixelLayer)
        ox, oy = document_offset(layer)
        if remembered:
            ox, oy = self._positions.get(layer.id, (ox, oy))
        for sx, sy in layer.surface.tile_keys():
            keys.update(Rect(sx * TILE + ox, sy * TILE + oy, TILE, TILE).tiles(TILE))
        return keys

    def _affects_output(self, layer: Layer) -> bool:
        if not all(g.visible for g in layer.ancestors()):
            return False
        if isinstance(layer, PixelLayer) and not layer.role.is_image:
            return self._overlays
        return True

    def _on_event(self, event: object) -> None:
        if isinstance(event, PixelsChanged):
            layer = event.layer
            if self._sources:
                for key in event.rect.tiles(TILE):
                    self._forget_source(layer.id, key)
            if not (layer.visible and self._affects_output(layer)):
                return
            stage = self._stage_index(layer)
            if stage is None:
                return
            is_pivot = stage == self._pivot_index()
            self._invalidate_rect(event.rect, keep_projections=is_pivot, hot=is_pivot)
        elif isinstance(event, LayerPropertyChanged):
            self._on_property(event.layer, event.name)
        elif isinstance(event, StructureChanged):
            self._stages = None
            self._drop_projections()
            if event.layer is None:
                self.invalidate()
                self._positions.clear()
                self._remember_positions(self.doc.root)
                return
            old = self._footprint(event.layer, remembered=True)
            self._remember_positions(event.layer)
            new = self._footprint(event.layer, remembered=False)
            self._invalidate_tiles(old | new, keep_projections=False)
        elif isinstance(event, ActiveLayerChanged):
            self._drop_projections()
        elif isinstance(event, DocumentReset):
            self._final.clear()
            self._sources.clear()
            self._sources_bytes = 0
            self._stale.clear()
            self._stages = None
            self._drop_projections()
            self._positions.clear()
            self._modes.clear()
            self._remember_positions(self.doc.root)
            self._dirty.clear()
            self.invalidate()

    def _on_property(self, layer: Layer, name: str) -> None:
        if name in _SILENT_PROPERTIES:
            return
        if name == "role":
            self._stages = None
            self._drop_projections()
            self._invalidate_tiles(self._footprint(layer, remembered=True), keep_projections=False)
            return
        if name in ("x", "y"):
            old = self._footprint(layer, remembered=True)
            self._remember_positions(layer)
            new = self._footprint(layer, remembered=False)
            if self._affects_output(layer) and layer.visible:
                self._invalidate_tiles(old | new, keep_projections=False)
            return
        if name != "visible" and not layer.visible:
            return
        if not self._affects_output(layer):
            return
        stage = self._stage_index(layer)
        keep = stage is not None and stage == self._pivot_index()
        old_mode = self._modes.get(layer.id, layer.blend)
        self._modes[layer.id] = layer.blend
        if clears_without_source(layer.blend) or clears_without_source(old_mode):
            # Such a layer changes the whole canvas, not just where its pixels are.
            self._invalidate_rect(self.doc.rect, keep_projections=keep)
            return
        self._invalidate_tiles(self._footprint(layer, remembered=False), keep_projections=keep)
