"""The brush engine: round anti-aliased dabs laid along a stroke, painted as one transaction.

A :class:`Brush` is a frozen value (size, hardness, opacity, flow, spacing, pressure
curves, smoothing, colour, mode). A :class:`Stroke` is one pen-down…pen-up gesture on one
pixel layer::

    stroke = Stroke(doc, layer, Brush(size=24, color=(200, 40, 40)))   # pen-down
    for x, y, p in pen_events:
        dirty = stroke.add_point(x, y, p)   # document-space rect to repaint
    stroke.end()                            # one undoable command (or stroke.abort())

Painting is *indirect* (as Krita's "wash" strokes): dabs accumulate into a per-tile float32
stroke coverage buffer that approaches the stroke's opacity (``cov += dab·flow·(limit −
cov)``), and each touched region is re-composited from the pen-down snapshot with that
coverage. So overlapping dabs of one stroke never exceed ``opacity`` while ``flow`` builds
up density, and pressure → opacity lowers the limit. Modes: ``PAINT`` (source-over of the
colour, premultiplied float32 maths on the touched region only), ``ERASE`` (alpha reduced
by the coverage), ``MASK`` (paints the alpha of an inpaint-mask or region layer; the colour
is fixed to white).

Coordinates: points are in document space (float, sub-pixel); the layer's document
offset is subtracted to reach surface space. Dabs are clipped to the document rectangle
and, when the document has a selection, multiplied by its coverage.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType

import numpy as np
from sfumato.canvas.edits.commands import InvalidEditError, LayerLockedError, in_document
from sfumato.canvas.edits.pixel_commands import PixelEdit, TilePatch
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer, Role, document_offset
from sfumato.canvas.model.tiles import TILE, Snapshot, TileKey, tile_rect
from sfumato.canvas.pixels import pixelops

log = logging.getLogger(__name__)

MASK_COLOR = (255, 255, 255)
SUBPIXEL_STEPS = 4  # dab positions are quantised to 1/4 pixel (16 cached masks per size)
SIZE_STEPS = 4  # diameters are quantised to 1/4 pixel
SMOOTHING_TIME = 0.06  # seconds: the time constant of smoothing=1 when timestamps are given
MIN_DIAMETER = 0.5


class BrushMode(Enum):
    PAINT = "paint"
    ERASE = "erase"
    MASK = "mask"


@dataclass(frozen=True)
class Curve:
    """A piecewise-linear map from pen pressure (0..1) to a factor (0..1).

    ``points`` are ``(pressure, factor)`` pairs with increasing pressure; pressures
    outside the first/last point take the end values.

    >>> Curve(((0.0, 0.2), (1.0, 1.0)))(0.5)
    0.6
    """

    points: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1.0, 1.0))

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a pressure curve needs at least one point")
        xs = [p[0] for p in self.points]
        if any(b < a for a, b in zip(xs, xs[1:])):
            raise ValueError("pressure curve points must be sorted by pressure")
        if any(not (0.0 <= v <= 1.0) for pt in self.points for v in pt):
            raise ValueError("pressure curve points must lie in [0, 1]")

    def __call__(self, pressure: float) -> float:
        pts = self.points
        if pressure <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if pressure <= x1:
                if x1 <= x0:
                    return y1
                return round(y0 + (y1 - y0) * (pressure - x0) / (x1 - x0), 12)
        return pts[-1][1]

    @classmethod
    def linear(cls, at_zero: float = 0.0, at_one: float = 1.0) -> Curve:
        return cls(((0.0, at_zero), (1.0, at_one)))


@dataclass(frozen=True)
class Brush:
    """A round brush. Sizes are in document pixels; colour is straight sRGB 0..255.

    - ``size``: dab diameter at full pressure.
    - ``hardness`` 0..1: fraction of the radius painted at full strength; beyond it the
      dab falls off smoothly to 0 at the rim (edges are anti-aliased at any hardness).
    - ``opacity`` 0..1: the most one stroke can cover (overlapping dabs never exceed it).
    - ``flow`` 0..1: how much each dab adds towards ``opacity``.
    - ``spacing``: distance between dabs as a fraction of the current diameter.
    - ``size_pressure`` / ``opacity_pressure``: curves mapping pressure to a factor of
      size / opacity; ``None`` means pressure does not affect it.
    - ``smoothing`` 0..1: how strongly the pen path is smoothed (0 = raw input);
      exponential, time-aware when events carry timestamps.
    - ``lazy_radius``: "pulled string" stabiliser, in pixels: the brush stays put until
      the pen is this far from it, then is dragged along behind it (0 = off). Jitter
      smaller than the radius never reaches the canvas; ``end`` catches up with the pen.
    """

    size: float = 16.0
    hardness: float = 0.8
    opacity: float = 1.0
    flow: float = 1.0
    spacing: float = 0.1
    color: tuple[int, int, int] = (0, 0, 0)
    mode: BrushMode = BrushMode.PAINT
    size_pressure: Curve | None = field(default_factory=lambda: Curve.linear(0.1, 1.0))
    opacity_pressure: Curve | None = None
    smoothing: float = 0.0
    lazy_radius: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.size) and 0.0 < self.size <= 4096.0):
            raise ValueError(f"brush size must be between 0 and 4096 pixels, got {self.size}")
        for name in ("hardness", "opacity", "flow", "smoothing"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"brush {name} must be between 0 and 1, got {value}")
        if self.smoothing >= 1.0:
            raise ValueError("brush smoothing must be below 1 (1 would never move)")
        if not (math.isfinite(self.lazy_radius) and 0.0 <= self.lazy_radius <= 1000.0):
            raise ValueError(f"brush lazy radius must be between 0 and 1000 pixels, got {self.lazy_radius}")
        if not (math.isfinite(self.spacing) and 0.01 <= self.spacing <= 10.0):
            raise ValueError(f"brush spacing must be between 0.01 and 10, got {self.spacing}")
        if len(self.color) != 3 or any(not 0 <= int(c) <= 255 for c in self.color):
            raise ValueError(f"brush colour must be three 0..255 values, got {self.color}")

    def diameter(self, pressure: float) -> float:
        """Dab diameter at ``pressure`` (pixels)."""
        factor = self.size_pressure(pressure) if self.size_pressure is not None else 1.0
        return max(self.size * factor, MIN_DIAMETER)

    def limit(self, pressure: float) -> float:
        """The coverage a stroke approaches at ``pressure`` (opacity × pressure curve)."""
        factor = self.opacity_pressure(pressure) if self.opacity_pressure is not None else 1.0
        return self.opacity * factor


# -- dab masks ---------------------------------------------------------------------------
def dab_mask(diameter: float, hardness: float, fx: float = 0.0, fy: float = 0.0) -> tuple[np.ndarray, int]:
    """A dab's coverage (float32 ``(n, n)``, read-only, values 0..1) and its half-size R.

    The dab centre lies at ``(R + fx, R + fy)`` from the mask's top-left corner, where
    pixel ``(i, j)`` covers ``[i, i+1) × [j, j+1)``; ``fx, fy`` in [0, 1) is the sub-pixel
    offset. Sizes and offsets are quantised (1/4 px) and the masks cached.
    """
    dq = max(1, round(diameter * SIZE_STEPS))
    hq = round(hardness * 100)
    key = (dq, hq, round(fx * SUBPIXEL_STEPS), round(fy * SUBPIXEL_STEPS))
    hit = _MASKS.get(key)
    if hit is not None:
        _MASKS.move_to_end(key)
        return hit
    global _mask_bytes
    made = _MASKS[key] = _dab_mask(*key)
    _mask_bytes += made[0].nbytes
    while _mask_bytes > MASK_CACHE_BYTES and len(_MASKS) > 1:
        _, (old, _r) = _MASKS.popitem(last=False)
        _mask_bytes -= old.nbytes
    return made


# Least recently used dab masks, bounded by bytes (a 4096 px dab alone is 64 MiB).
MASK_CACHE_BYTES = 64 * 1024 * 1024
_MASKS: OrderedDict[tuple[int, int, int, int], tuple[np.ndarray, int]] = OrderedDict()
_mask_bytes = 0


def _dab_mask(dq: int, hq: int, qx: int, qy: int) -> tuple[np.ndarray, int]:
    diameter = dq / SIZE_STEPS
    hardness = hq / 100
    r = diameter / 2
    big_r = math.ceil(r + 1)
    n = 2 * big_r + 1
    coords = np.arange(n, dtype=np.float32) + np.float32(0.5 - big_r)
    dx = coords - np.float32(qx / SUBPIXEL_STEPS)
    dy = coords - np.float32(qy / SUBPIXEL_STEPS)
    d = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    mask = np.clip(np.float32(r + 0.5) - d, 0, 1)  # anti-aliased rim
    if hardness < 1.0:
        t = np.clip((d / np.float32(r) - np.float32(hardness)) / np.float32(1 - hardness), 0, 1)
        mask *= 1 - t * t * (3 - 2 * t)  # smoothstep falloff from the hard core to the rim
    if diameter < 1.0:
        mask *= np.float32(diameter)  # tiny dabs: keep ink proportional to area
    mask = mask.astype(np.float32)
    mask.setflags(write=False)
    return mask, big_r


# -- strokes -----------------------------------------------------------------------------
_ZERO_TILE = np.zeros((TILE, TILE, 4), np.uint8)
_ZERO_TILE.setflags(write=False)


class StrokeClosedError(RuntimeError):
    """The stroke was already ended or aborted."""


class Stroke:
    """One pen-down…pen-up transaction; see the module docstring.

    While a stroke is open the document's history refuses undo/redo/other edits.
    """

    def __init__(self, doc: Document, layer: PixelLayer, brush: Brush) -> None:
        if not isinstance(layer, PixelLayer):
            raise InvalidEditError(f"{layer.name!r} is a group; choose a pixel layer to paint on")
        if not in_document(doc, layer):
            raise InvalidEditError(f"{layer.name!r} is not a layer of this document")
        if layer.locked:
            raise LayerLockedError(layer)
        if brush.mode is BrushMode.MASK and layer.role not in (Role.INPAINT_MASK, Role.REGION):
            raise InvalidEditError(
                f"the mask brush paints inpaint-mask and region layers; {layer.name!r} is a "
                f"{layer.role.value} layer (use the paint brush, or pick a mask layer)"
            )
        doc.history.hold(self)
        self.doc = doc
        self.layer = layer
        self.brush = brush
        self._surface = layer.surface
        self._before = layer.surface.snapshot()
        self._ox, self._oy = document_offset(layer)
        self._clip = doc.rect.translate(-self._ox, -self._oy)
        self._selection = doc.selection
        self._cov: dict[TileKey, np.ndarray] = {}
        self._dirty: dict[TileKey, Rect] = {}
        self._color: tuple[int, int, int] = (
            MASK_COLOR if brush.mode is BrushMode.MASK
            else (int(brush.color[0]), int(brush.color[1]), int(brush.color[2]))
        )
        self._scratch = pixelops.Scratch()
        self._open = True
        self._last: tuple[float, float, float] | None = None  # last path point (x, y, p), surface space
        self._raw: tuple[float, float, float] | None = None  # last raw input point
        self._t: float | None = None
        self._since = 0.0  # path length since the last dab
        self.dab_count = 0

    # -- context manager: end on success, abort on error --------------------------------
    def __enter__(self) -> Stroke:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._open:
            return
        if exc_type is None:
            self.end()
        else:
            self.abort()

    @property
    def is_open(self) -> bool:
        return self._open

    # -- input --------------------------------------------------------------------------
    def add_point(self, x: float, y: float, pressure: float = 1.0, t: float | None = None) -> Rect:
        """Feed one pen event (document space, pressure 0..1, ``t`` in seconds or None).

        Lays dabs along the path since the previous point and returns the document-space
        rect whose pixels changed (empty if none); the change is also announced with
        ``doc.notify_pixels``.
        """
        if not self._open:
            raise StrokeClosedError("this stroke has ended; begin a new one")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"stroke point must be finite, got ({x}, {y})")
        p = min(max(float(pressure) if math.isfinite(pressure) else 1.0, 0.0), 1.0)
        sx, sy = x - self._ox, y - self._oy
        self._raw = (sx, sy, p)
        if self._last is None:
            self._last = (sx, sy, p)
            self._t = t
            return self._finish(self._dab(sx, sy, p))
        alpha = self._follow(t)
        lx, ly, _ = self._last
        tx, ty = lx + (sx - lx) * alpha, ly + (sy - ly) * alpha
        lazy = self.brush.lazy_radius
        if lazy > 0:
            dist = math.hypot(tx - lx, ty - ly)
            if dist <= lazy:
                self._last = (lx, ly, p)
                return self._finish(Rect(0, 0, 0, 0))
            pull = 1.0 - lazy / dist  # the string is taut: stay `lazy` px behind
            tx, ty = lx + (tx - lx) * pull, ly + (ty - ly) * pull
        return self._finish(self._segment((tx, ty, p)))

    def dab(self, x: float, y: float, pressure: float = 1.0) -> Rect:
        """Stamp a single dab at document ``(x, y)`` (no path, spacing or smoothing).

        For tools that place dabs themselves and for benchmarks; returns the
        document-space rect changed, also announced with ``doc.notify_pixels``.
        """
        if not self._open:
            raise StrokeClosedError("this stroke has ended; begin a new one")
        p = min(max(float(pressure), 0.0), 1.0)
        return self._finish(self._dab(x - self._ox, y - self._oy, p))

    def _follow(self, t: float | None) -> float:
        """How far the smoothed point moves towards the new input (1 = all the way)."""
        smoothing = self.brush.smoothing
        if smoothing <= 0.0:
            return 1.0
        if t is not None and self._t is not None and t > self._t:
            dt = t - self._t
            self._t = t
            return 1.0 - math.exp(-dt / (smoothing * SMOOTHING_TIME))
        self._t = t if t is not None else self._t
        return 1.0 - smoothing

    def _segment(self, target: tuple[float, float, float]) -> Rect:
        assert self._last is not None
        x0, y0, p0 = self._last
        x1, y1, p1 = target
        length = math.hypot(x1 - x0, y1 - y0)
        dirty = Rect(0, 0, 0, 0)
        if length == 0.0:
            # The pen did not move (e.g. pen-up repeats the last point at pressure 0):
            # no distance, so no dabs; only the pressure to interpolate from changes.
            self._last = target
            return dirty
        s = 0.0
        while True:
            frac = s / length if length > 0 else 1.0
            p = p0 + (p1 - p0) * frac
            step = max(self.brush.spacing * self.brush.diameter(p), 0.25)
            need = step - self._since
            if s + need > length:
                self._since += length - s
                break
            s += need
            self._since = 0.0
            f = s / length
            dirty = dirty.union(self._dab(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, p0 + (p1 - p0) * f))
        self._last = target
        return dirty

    def _finish(self, dirty: Rect) -> Rect:
        doc_rect = dirty.translate(self._ox, self._oy)
        self.doc.notify_pixels(self.layer, doc_rect)
        return doc_rect

    # -- rendering ------------------------------------------------------------------------
    def _dab(self, cx: float, cy: float, pressure: float) -> Rect:
        """Stamp one dab centred at surface ``(cx, cy)``; returns the surface rect touched."""
        brush = self.brush
        limit = np.float32(brush.limit(pressure))
        if limit <= 0 or brush.flow <= 0:
            return Rect(0, 0, 0, 0)
        ix, iy = math.floor(cx), math.floor(cy)
        qx = round((cx - ix) * SUBPIXEL_STEPS)
        qy = round((cy - iy) * SUBPIXEL_STEPS)
        if qx == SUBPIXEL_STEPS:
            ix, qx = ix + 1, 0
        if qy == SUBPIXEL_STEPS:
            iy, qy = iy + 1, 0
        mask, big_r = dab_mask(brush.diameter(pressure), brush.hardness,
                               qx / SUBPIXEL_STEPS, qy / SUBPIXEL_STEPS)
        n = mask.shape[0]
        mx, my = ix - big_r, iy - big_r
        rect = Rect(mx, my, n, n).intersect(self._clip)
        if rect.empty:
            return rect
        flow = np.float32(brush.flow)
        erase = brush.mode is BrushMode.ERASE
        sel = self._selection
        self.dab_count += 1
        for key in rect.tiles(TILE):
            tx, ty = key[0] * TILE, key[1] * TILE
            r = tile_rect(key).intersect(rect)
            orig_tile = self._before.get(key)
            if erase and orig_tile is None:
                continue  # nothing there to erase
            buf = self._cov.get(key)
            if buf is None:
                buf = self._cov[key] = np.zeros((TILE, TILE), np.float32)
            sl = r.slices(tx, ty)
            cov = buf[sl]
            # cov += mask · flow · max(limit − cov, 0), without temporaries
            inc = self._scratch.get("inc", cov.shape)
            np.subtract(limit, cov, out=inc)
            np.maximum(inc, 0, out=inc)
            np.multiply(inc, mask[r.slices(mx, my)], out=inc)
            if flow != 1:
                inc *= flow
            cov += inc
            eff = cov
            if sel is not None:
                eff = np.multiply(cov, sel[r.slices(-self._ox, -self._oy)], out=inc)
            region = (orig_tile if orig_tile is not None else _ZERO_TILE)[sl]
            dst = self._surface.writable_tile(key)[sl]
            if erase:
                pixelops.erase_into(dst, region, eff, self._scratch)
            else:
                pixelops.paint_color_into(dst, region, self._color, eff, self._scratch)
            old = self._dirty.get(key)
            self._dirty[key] = r if old is None else old.union(r)
        return rect

    # -- commit / cancel ------------------------------------------------------------------
    def end(self) -> PixelEdit | None:
        """Pen-up: record the stroke as one undoable command (None if nothing changed)."""
        if not self._open:
            raise StrokeClosedError("this stroke has already ended")
        raw, last = self._raw, self._last
        lags = self.brush.smoothing > 0 or self.brush.lazy_radius > 0
        if lags and raw is not None and last is not None and raw[:2] != last[:2]:
            self._finish(self._segment(raw))  # catch up with the pen
        self._open = False
        keys = list(self._dirty)
        self._surface.drop_empty_tiles(keys)
        patch = TilePatch.capture(self._before, self._surface, keys=self._dirty)
        self._release()
        if not patch:
            self.doc.history.release(self)
            return None
        label = {BrushMode.PAINT: "Brush Stroke", BrushMode.ERASE: "Eraser Stroke",
                 BrushMode.MASK: "Mask Stroke"}[self.brush.mode]
        command = PixelEdit(self.doc, self.layer, patch, label)
        self.doc.history.record(command, owner=self)
        return command

    def abort(self) -> None:
        """Cancel: put back every pixel the stroke changed; nothing enters the history."""
        if not self._open:
            return
        self._open = False
        rect = Rect(0, 0, 0, 0)
        for r in self._dirty.values():
            rect = rect.union(r)
        self._surface.restore(self._before, list(self._dirty))
        self._release()
        self.doc.history.release(self)
        self._finish(rect)

    def _release(self) -> None:
        self._before = Snapshot({})
        self._cov.clear()
        self._dirty = {}
