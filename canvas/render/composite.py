"""Compositing the layer tree into pixels: :func:`flatten` and its building blocks (the
cached window compositor is :class:`sfumato.canvas.render.compositor.Compositor`).

Semantics (W3C Compositing and Blending Level 1, the OpenRaster composite ops):

- Layers composite bottom to top; a group's ``children`` are listed top first.
- Every group composites **in isolation**: its children are rendered into a transparent
  buffer, which is then blended onto what lies below the group with the group's own blend
  mode and opacity (so a multiply layer inside a group never multiplies with layers below
  the group).
- Opacity multiplies the source alpha. Invisible layers (and everything in an invisible
  group) are skipped.
- Offsets: a layer's ``x``/``y`` places its surface origin relative to its parent group's
  origin; the root sits at the document origin, so with groups at (0, 0) — what Krita,
  GIMP and MyPaint write — ``x``/``y`` are document coordinates. See
  :func:`sfumato.canvas.model.layers.document_offset`.
- Only image layers make up the picture: paint and generated layers and groups
  (:func:`is_image_layer`). Inpaint-mask, region, control and reference layers are left out of
  :func:`flatten` by default; pass ``include`` to choose other layers (e.g. the planner
  flattens one control layer alone over white with ``include=only(layer)`` and
  ``background=(255, 255, 255, 255)``).

Pixels are straight-alpha RGBA uint8 at the edges (layers, results) and planar
premultiplied float32 inside (:mod:`sfumato.canvas.pixels.blendmath`). Work is done per 256×256 document tile,
skipping layer tiles that do not exist (surfaces are sparse).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from sfumato.canvas.model.document import (
    Document,
)
from sfumato.canvas.model.geometry import Rect, nonzero_bounds
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer
from sfumato.canvas.model.tiles import TILE, TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.canvas.pixels.blendmath import (
    NEEDS_STRAIGHT,
    blend_into,
    clears_without_source,
    from_opaque,
    over,
    packed_words,
    premultiply,
    straight_from_u8,
    unpremultiply,
)

log = logging.getLogger(__name__)

Include = Callable[[Layer], bool]
"""Chooses which layers take part in a composite (groups: whether to descend into them)."""

RGBA = tuple[int, int, int, int]

_ALPHA_ONE = np.uint32(1 << 24)  # packed RGBA words with alpha >= 1 are >= this
_ALPHA_FULL = np.uint32(255 << 24)
_BBOX_MIN_AREA = 64 * 64  # below this, finding the content box costs more than it saves
_NOTHING_OVER_EMPTY = frozenset({BlendMode.DST_IN, BlendMode.DST_OUT, BlendMode.SRC_ATOP})


# -- layer selection -------------------------------------------------------------------------
def is_image_layer(layer: Layer) -> bool:
    """Whether ``layer`` is part of the picture: groups, paint and generated layers."""
    if isinstance(layer, PixelLayer):
        return layer.role.is_image
    return True


def only(*layers: Layer) -> Include:
    """An ``include`` predicate that selects exactly ``layers`` (any role) and the groups
    holding them, e.g. ``flatten(doc, include=only(control_layer), background=WHITE)``."""
    chosen = {id(layer) for layer in layers}
    groups = {id(g) for layer in layers for g in layer.ancestors()}

    def include(layer: Layer) -> bool:
        return id(layer) in chosen or id(layer) in groups

    return include


def effective_opacity(layer: Layer) -> float:
    """``layer.opacity`` clamped to [0, 1]; NaN counts as 0."""
    op = float(layer.opacity)
    if not op > 0.0:
        return 0.0
    return min(op, 1.0)


# -- tile rendering core -------------------------------------------------------------------
def fetch(surface: TiledSurface, rect: Rect) -> np.ndarray | None:
    """Straight RGBA uint8 pixels of ``rect`` (surface space), or ``None`` when the surface
    has no tile there. A view (no copy) when ``rect`` lies inside one tile; read-only."""
    tx0, ty0 = rect.x // TILE, rect.y // TILE
    if (rect.x1 - 1) // TILE == tx0 and (rect.y1 - 1) // TILE == ty0:
        key = (tx0, ty0)
        if not surface.has_tile(key):
            return None
        x0, y0 = rect.x - tx0 * TILE, rect.y - ty0 * TILE
        return surface.tile(key)[y0 : y0 + rect.h, x0 : x0 + rect.w]
    if not any(surface.has_tile(key) for key in rect.tiles(TILE)):
        return None
    return surface.read(rect)


class StackRenderer:
    """Composites layers over one document-space region into planar premultiplied
    float32 ``(4, h, w)``.

    ``None`` stands for a fully transparent buffer throughout, so empty areas cost nothing.
    ``include`` chooses the layers (see :func:`is_image_layer`, :func:`only`).
    """

    def __init__(self, include: Include = is_image_layer) -> None:
        self.include = include

    def render_children(
        self, group: GroupLayer, region: Rect, origin: tuple[int, int] = (0, 0)
    ) -> np.ndarray | None:
        """The isolated composite of ``group``'s children over ``region`` (document space);
        ``origin`` is the document position of ``group``'s own origin."""
        acc: np.ndarray | None = None
        for child in reversed(group.children):
            acc = self.apply(acc, child, region, origin)
        return acc

    def apply(
        self,
        acc: np.ndarray | None,
        layer: Layer,
        region: Rect,
        origin: tuple[int, int] = (0, 0),
    ) -> np.ndarray | None:
        """Composite ``layer`` (with its mode and opacity) onto ``acc``; returns the result,
        which may be ``acc`` modified in place."""
        if not layer.visible or not self.include(layer):
            return acc
        lx, ly = origin[0] + layer.x, origin[1] + layer.y
        mode = layer.blend
        opacity = effective_opacity(layer)
        if isinstance(layer, GroupLayer):
            content = self.render_children(layer, region, (lx, ly)) if opacity > 0 else None
            if content is None:
                return None if clears_without_source(mode) else acc
            if acc is None:
                if mode in _NOTHING_OVER_EMPTY:
                    return None
                if opacity != 1.0:
                    content *= np.float32(opacity)
                return content
            blend_into(acc, content, mode, opacity)
            return acc
        assert isinstance(layer, PixelLayer)
        if opacity <= 0:
            return None if clears_without_source(mode) else acc
        px = fetch(layer.surface, region.translate(-lx, -ly))
        if px is None:
            return None if clears_without_source(mode) else acc
        return blend_pixels(acc, px, mode, opacity)


class PreparedSource:
    """A layer's pixels over one region with their float conversions computed once.

    The Compositor keeps these for the layers above the active one, which a non-normal
    stack makes it re-blend after every dab: converting uint8 to premultiplied float32
    is then the larger part of the work.
    """

    __slots__ = ("pixels", "premul", "_straight")

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels  # straight RGBA uint8 (h, w, 4), not to be modified
        self.premul = premultiply(pixels)  # planar premultiplied float32, opacity 1
        self._straight: np.ndarray | None = None

    def straight(self) -> np.ndarray:
        """Planar straight colours ``(3, h, w)`` float32 (computed on first use)."""
        if self._straight is None:
            self._straight = straight_from_u8(self.pixels)
        return self._straight

    @property
    def has_straight(self) -> bool:
        return self._straight is not None

    @property
    def nbytes(self) -> int:
        return self.premul.nbytes + (0 if self._straight is None else self._straight.nbytes)


def _coverage(px: np.ndarray) -> np.ndarray:
    """Boolean ``(h, w)``: where straight RGBA uint8 ``px`` has alpha > 0."""
    words = packed_words(px)
    if words is None:
        return px[..., 3] > 0
    return words >= _ALPHA_ONE  # alpha is the top byte: a contiguous compare, no strides


def _opaque(px: np.ndarray) -> bool:
    words = packed_words(px)
    if words is None:
        return bool(px[..., 3].min() == 255)
    return bool((words >= _ALPHA_FULL).all())


def blend_pixels(
    acc: np.ndarray | None,
    px: np.ndarray,
    mode: BlendMode,
    opacity: float,
    prepared: PreparedSource | None = None,
    box: tuple[slice, slice] | None = None,
) -> np.ndarray | None:
    """Composite straight RGBA uint8 ``px`` ``(h, w, 4)`` onto planar premultiplied float32
    ``acc`` ``(4, h, w)`` (or onto nothing); returns the result (``acc`` modified in place,
    a new array, or ``None`` for fully transparent).

    ``prepared`` optionally holds ``px``'s conversions — over a larger area, of which
    ``box`` (rows, cols) is ``px``'s part.
    """
    covered = _coverage(px)
    if not covered.any():
        return None if clears_without_source(mode) else acc
    rows, cols = box if box is not None else (slice(None), slice(None))
    if acc is None:
        if mode in _NOTHING_OVER_EMPTY:
            return None
        if prepared is not None:
            return prepared.premul[:, rows, cols] * np.float32(opacity)
        return premultiply(px, opacity)
    h, w = covered.shape
    dst = acc
    if h * w >= _BBOX_MIN_AREA and not clears_without_source(mode):
        # Work only on the box holding the source's pixels (soft blobs rarely fill a tile).
        held = nonzero_bounds(covered)  # not empty: covered.any() above
        y0, y1, x0, x1 = held.y, held.y1, held.x, held.x1
        if (y1 - y0) * (x1 - x0) < h * w:
            px = px[y0:y1, x0:x1]
            dst = acc[:, y0:y1, x0:x1]
            if prepared is not None:
                r0 = rows.start or 0
                c0 = cols.start or 0
                rows, cols = slice(r0 + y0, r0 + y1), slice(c0 + x0, c0 + x1)
    if mode is BlendMode.NORMAL and opacity == 1.0 and _opaque(px):
        from_opaque(px, out=dst)  # an opaque source replaces the backdrop
        return acc
    needs_straight = mode in NEEDS_STRAIGHT
    if prepared is not None:
        cs = prepared.straight()[:, rows, cols] if needs_straight else None
        blend_into(dst, prepared.premul[:, rows, cols], mode, opacity, src_straight=cs)
        return acc
    src = premultiply(px, opacity)
    blend_into(dst, src, mode, src_straight=straight_from_u8(px) if needs_straight else None)
    return acc


def over_background(acc: np.ndarray | None, background: RGBA, shape: tuple[int, int]) -> np.ndarray:
    """Planar ``acc`` composited (source-over) onto a solid straight-RGBA uint8 colour."""
    bg = premultiply(np.array(background, np.uint8).reshape(1, 1, 4))
    out = np.broadcast_to(bg, (4,) + shape).copy()
    if acc is not None:
        over(out, acc)
    return out


def doc_tiles(rect: Rect) -> Iterator[Rect]:
    """The pieces of ``rect`` cut along the document's 256-pixel tile grid."""
    for tx, ty in rect.tiles(TILE):
        yield Rect(tx * TILE, ty * TILE, TILE, TILE).intersect(rect)


# -- public API ----------------------------------------------------------------------------
def flatten(
    doc: Document,
    rect: Rect | None = None,
    *,
    include: Include = is_image_layer,
    background: RGBA | None = None,
) -> np.ndarray:
    """The composited picture over ``rect`` (document space; default the whole document)
    as a new ``(h, w, 4)`` straight-alpha RGBA uint8 array.

    ``include`` chooses the layers (default: the image — paint, generated, groups; see
    :func:`only`); ``background`` (straight RGBA uint8) is put under the result. Pixels of
    ``rect`` outside the document are transparent (or ``background``).
    """
    return flatten_group(doc.root, doc.rect, rect, include=include, background=background)


def flatten_layers(
    layers: Iterable[Layer],
    bounds: Rect,
    rect: Rect | None = None,
    *,
    background: RGBA | None = None,
) -> np.ndarray:
    """Composite loose ``layers`` (listed top first, not necessarily in a document) over
    ``rect`` of a canvas ``bounds``; offsets are taken as document coordinates."""
    group = _DetachedStack(list(layers))
    return flatten_group(group, bounds, rect, include=lambda _layer: True, background=background)


def flatten_group(
    group: GroupLayer,
    bounds: Rect,
    rect: Rect | None = None,
    *,
    include: Include = is_image_layer,
    background: RGBA | None = None,
) -> np.ndarray:
    """The isolated composite of ``group``'s children over ``rect`` ∩ ``bounds``, uint8."""
    rect = bounds if rect is None else rect
    if rect.empty:
        return np.zeros((max(rect.h, 0), max(rect.w, 0), 4), np.uint8)
    out = np.zeros((rect.h, rect.w, 4), np.uint8)
    if background is not None:
        out[...] = np.array(background, np.uint8)
    renderer = StackRenderer(include)
    for piece in doc_tiles(rect.intersect(bounds)):
        acc = renderer.render_children(group, piece)
        if background is not None:
            acc = over_background(acc, background, (piece.h, piece.w))
        if acc is not None:
            unpremultiply(acc, out[piece.slices(rect.x, rect.y)])
    return out


class _DetachedStack(GroupLayer):
    """A throwaway group over layers that may already have a parent (parents untouched)."""

    def __init__(self, layers: list[Layer]) -> None:
        super().__init__("detached")
        self.children = layers
