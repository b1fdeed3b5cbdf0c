"""Undoable changes of the document's size: :class:`ResizeCanvas` (Image → Canvas Size) and
:class:`ScaleImage` (Image → Image Size).

**Canvas size** grows or crops the canvas by per-side amounts (:class:`CanvasMargins`:
left, top, right, bottom; negative crops), or to a new width and height placed by an
:class:`Anchor` (``Anchor.TOP_LEFT`` keeps the picture at the top left and adds or removes
on the right and bottom). The picture keeps its place on the canvas: every top-level
layer's ``x``/``y`` moves by the left and top amounts, and a layer inside a group moves
with its group (offsets are relative, see :func:`~sfumato.canvas.model.layers.document_offset`),
so every layer's document position shifts exactly once. Locked layers move too: the
canvas changes, not the layers. Pixels that end outside the canvas are **kept** (surfaces
are unbounded; as Krita does): growing the canvas again, or moving the layer, shows them.
With ``crop_layers=True`` they are erased instead (as GIMP's "resize layers"/crop does).
The selection moves with the picture; the part that falls outside is dropped.

**Image size** resamples the whole document to a new width and height
(:mod:`sfumato.canvas.pixels.resample`: Lanczos or area): every pixel layer (inpaint
masks, regions and control layers included) as a picture of its own, every layer's and
group's offset scaled (rounded), the selection as coverage.

Both are one undo step; undo restores sizes, offsets, pixels and the selection byte for
byte (pixels as copy-on-write tile snapshots). Both announce ``DocumentReset`` (everything
may have changed), which is also what makes the recovery journal write a snapshot of
the document at its new size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
from sfumato.canvas.edits.commands import InvalidEditError
from sfumato.canvas.edits.document_commands import StoredCoverage
from sfumato.canvas.model.document import MAX_SIDE, Document, DocumentReset
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.history import Command
from sfumato.canvas.model.layers import ControlSettings, Layer, PixelLayer, document_offset
from sfumato.canvas.model.tiles import TILE, Snapshot, TiledSurface, tile_rect
from sfumato.canvas.pixels.resample import Filter, resize, scale_surface

__all__ = [
    "Anchor",
    "CanvasMargins",
    "Filter",
    "ResizeCanvas",
    "ScaleImage",
    "resize_canvas",
    "resize_canvas_to",
    "scale_image",
]


class Anchor(Enum):
    """Where the picture stays when the canvas changes size (``fx``/``fy``: 0 left/top,
    0.5 centre, 1 right/bottom)."""

    TOP_LEFT = "top-left"
    TOP = "top"
    TOP_RIGHT = "top-right"
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM = "bottom"
    BOTTOM_RIGHT = "bottom-right"

    @property
    def fx(self) -> float:
        return 0.0 if "left" in self.value else 1.0 if "right" in self.value else 0.5

    @property
    def fy(self) -> float:
        return 0.0 if "top" in self.value else 1.0 if "bottom" in self.value else 0.5

    @classmethod
    def grid(cls) -> tuple[tuple[Anchor, Anchor, Anchor], ...]:
        """The nine anchors as three rows of three, top row first."""
        a = list(cls)
        return (a[0], a[1], a[2]), (a[3], a[4], a[5]), (a[6], a[7], a[8])


@dataclass(frozen=True)
class CanvasMargins:
    """Pixels added to (positive) or cut from (negative) each side of the canvas."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    @classmethod
    def for_size(cls, width: int, height: int, new_width: int, new_height: int,
                 anchor: Anchor = Anchor.CENTER) -> CanvasMargins:
        """The margins that take a ``width``×``height`` canvas to the new size, the
        picture held at ``anchor``. A centred side gets ``floor(change / 2)`` on the left
        or top: growing by an odd amount adds the extra pixel on the right or bottom,
        cropping by an odd amount removes it on the left or top."""
        dx, dy = new_width - width, new_height - height
        left = math.floor(dx * anchor.fx)
        top = math.floor(dy * anchor.fy)
        return cls(left, top, dx - left, dy - top)

    def new_size(self, width: int, height: int) -> tuple[int, int]:
        return width + self.left + self.right, height + self.top + self.bottom

    @property
    def is_zero(self) -> bool:
        return not (self.left or self.top or self.right or self.bottom)


def _check_size(width: int, height: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise InvalidEditError(
            f"the canvas would be {width} × {height} px; each side must be 1 to {MAX_SIDE} px"
        )


def _set_size(doc: Document, width: int, height: int) -> None:
    """The model has no size mutator; these commands are the only ones that change it."""
    doc.width, doc.height = width, height


def _snapshot_bytes(a: Snapshot, b: Snapshot) -> int:
    """Bytes of the tiles the two versions do not share."""
    ids = {id(t) for t in b.values()}
    only_a = sum(t.nbytes for t in a.values() if id(t) not in ids)
    ids_a = {id(t) for t in a.values()}
    return only_a + sum(t.nbytes for t in b.values() if id(t) not in ids_a)


def _place(coverage: np.ndarray, dx: int, dy: int, width: int, height: int) -> np.ndarray:
    """``coverage`` moved by ``dx``/``dy`` onto a ``width``×``height`` canvas (what falls
    outside is dropped, what is new is unselected)."""
    out = np.zeros((height, width), np.float32)
    h, w = coverage.shape
    inside = Rect(dx, dy, w, h).intersect(Rect(0, 0, width, height))
    if not inside.empty:
        out[inside.slices()] = coverage[inside.slices(dx, dy)]
    return out


def _cropped(surface: TiledSurface, keep: Rect) -> Snapshot:
    """``surface``'s tiles with every pixel outside ``keep`` (surface space) erased."""
    tiles = dict(surface.snapshot())
    for key in list(tiles):
        area = tile_rect(key)
        inside = area.intersect(keep)
        if inside.empty:
            del tiles[key]
        elif inside != area:
            tile = np.zeros((TILE, TILE, 4), np.uint8)
            sl = inside.slices(area.x, area.y)
            tile[sl] = tiles[key][sl]
            if tile[..., 3].any():
                tile.setflags(write=False)
                tiles[key] = tile
            else:
                del tiles[key]
    return Snapshot(tiles)


class ResizeCanvas(Command):
    """Grow or crop the canvas by ``margins`` (see the module docstring).

    ``crop_layers``: erase the pixels that end outside the new canvas (default: keep them).
    """

    def __init__(self, doc: Document, margins: CanvasMargins, crop_layers: bool = False,
                 label: str = "Canvas Size") -> None:
        if not isinstance(margins, CanvasMargins) or not all(
            isinstance(v, int) and not isinstance(v, bool)
            for v in (margins.left, margins.top, margins.right, margins.bottom)
        ):
            raise InvalidEditError(f"canvas margins must be whole pixels, got {margins!r}")
        _check_size(*margins.new_size(doc.width, doc.height))
        self.doc = doc
        self.margins = margins
        self.crop_layers = crop_layers
        self.label = label
        self._old_size = (doc.width, doc.height)
        self._moved: list[tuple[Layer, int, int]] = []  # top-level layers and their old x/y
        self._old_selection: StoredCoverage | None = None
        self._crops: list[tuple[PixelLayer, Snapshot, Snapshot]] = []  # layer, before, after
        self._done_once = False

    def redo(self) -> None:
        doc, m = self.doc, self.margins
        width, height = m.new_size(doc.width, doc.height)
        _check_size(width, height)
        self._old_size = (doc.width, doc.height)
        self._moved = [(layer, layer.x, layer.y) for layer in doc.root.children]
        self._old_selection = None if doc.selection is None else StoredCoverage.store(doc.selection)
        if self.crop_layers and not self._done_once:
            canvas = Rect(0, 0, width, height)
            self._crops = []
            for layer in doc.pixel_layers():
                x, y = document_offset(layer)
                keep = canvas.translate(-(x + m.left), -(y + m.top))
                self._crops.append((layer, layer.surface.snapshot(), _cropped(layer.surface, keep)))
        new_selection = None if doc.selection is None else _place(
            doc.selection, m.left, m.top, width, height
        )
        # everything computed: now change the document
        for layer, x, y in self._moved:
            layer.x, layer.y = x + m.left, y + m.top
        for layer, _before, after in self._crops:
            layer.surface.restore(after)
        doc.selection = new_selection
        _set_size(doc, width, height)
        self._done_once = True
        doc.changed.emit(DocumentReset())

    def undo(self) -> None:
        doc = self.doc
        for layer, x, y in self._moved:
            layer.x, layer.y = x, y
        for layer, before, _after in self._crops:
            layer.surface.restore(before)
        doc.selection = None if self._old_selection is None else self._old_selection.load()
        _set_size(doc, *self._old_size)
        doc.changed.emit(DocumentReset())

    def nbytes(self) -> int:
        pixels = sum(_snapshot_bytes(before, after) for _, before, after in self._crops)
        return pixels + (self._old_selection.nbytes if self._old_selection is not None else 0)


def _scaled(value: int, scale: float) -> int:
    return math.floor(value * scale + 0.5)


class ScaleImage(Command):
    """Resample the whole document to ``width``×``height`` (see the module docstring)."""

    def __init__(self, doc: Document, width: int, height: int, kind: Filter = Filter.LANCZOS,
                 label: str = "Image Size") -> None:
        if isinstance(width, bool) or isinstance(height, bool) or not (
            isinstance(width, int) and isinstance(height, int)
        ):
            raise InvalidEditError(f"an image size must be whole pixels, got {width!r} × {height!r}")
        _check_size(width, height)
        if not isinstance(kind, Filter):
            raise InvalidEditError(f"unknown resampling {kind!r}; known: {', '.join(f.value for f in Filter)}")
        self.doc = doc
        self.size = (width, height)
        self.kind = kind
        self.label = label
        self._old_size = (doc.width, doc.height)
        self._offsets: list[tuple[Layer, tuple[int, int], tuple[int, int]]] = []  # old, new x/y
        self._pixels: list[tuple[PixelLayer, Snapshot, Snapshot]] = []  # layer, before, after
        self._selection: tuple[StoredCoverage | None, StoredCoverage | None] = (None, None)
        #: pose layers' skeletons (in their layers' pixels) before and after
        self._poses: list[tuple[PixelLayer, ControlSettings, ControlSettings]] = []

    def redo(self) -> None:
        if not self._pixels and not self._offsets:
            self._compute()
        self._apply(after=True)

    def undo(self) -> None:
        self._apply(after=False)

    def _apply(self, *, after: bool) -> None:
        """Put the document in its state after the change (``after``) or before it."""
        doc, side = self.doc, 1 if after else 0
        for layer, *offsets in self._offsets:
            layer.x, layer.y = offsets[side]
        for layer, *surfaces in self._pixels:
            layer.surface.restore(surfaces[side])
        for layer, *controls in self._poses:
            layer.control = controls[side]
        selection = self._selection[side]
        doc.selection = None if selection is None else selection.load()
        _set_size(doc, *(self.size if after else self._old_size))
        doc.changed.emit(DocumentReset())

    def _compute(self) -> None:
        """Everything the change needs, computed before the document is touched."""
        doc = self.doc
        width, height = self.size
        sx, sy = width / doc.width, height / doc.height
        self._old_size = (doc.width, doc.height)
        new_xy = {layer: (_scaled(layer.x, sx), _scaled(layer.y, sy)) for layer in doc.layers()}

        def new_offset(layer: Layer) -> tuple[int, int]:
            x, y = new_xy[layer]
            for group in layer.ancestors():
                if group.parent is not None:
                    gx, gy = new_xy[group]
                    x, y = x + gx, y + gy
            return x, y

        pixels, poses = [], []
        for layer in doc.pixel_layers():
            old_xy, new_xy_doc = document_offset(layer), new_offset(layer)
            scaled = scale_surface(layer.surface, old_xy, new_xy_doc, sx, sy, self.kind)
            pixels.append((layer, layer.surface.snapshot(), scaled.snapshot()))
            control = layer.control
            if control is not None and control.pose is not None:  # keypoints are in the layer's pixels
                pose = control.pose.translated(*old_xy).scaled(sx, sy).translated(-new_xy_doc[0], -new_xy_doc[1])
                poses.append((layer, control, dataclasses.replace(control, pose=pose)))
        self._poses = poses
        old_sel = None if doc.selection is None else StoredCoverage.store(doc.selection)
        new_sel = None
        if doc.selection is not None:
            coverage = np.clip(resize(doc.selection, width, height, self.kind), 0.0, 1.0)
            new_sel = StoredCoverage.store(coverage.astype(np.float32, copy=False))
        self._offsets = [(layer, (layer.x, layer.y), xy) for layer, xy in new_xy.items()]
        self._pixels = pixels
        self._selection = (old_sel, new_sel)

    def nbytes(self) -> int:
        pixels = sum(_snapshot_bytes(before, after) for _, before, after in self._pixels)
        return pixels + sum(s.nbytes for s in self._selection if s is not None)


# -- verbs ---------------------------------------------------------------------------------
def resize_canvas(doc: Document, margins: CanvasMargins, crop_layers: bool = False) -> ResizeCanvas:
    """Grow (positive) or crop (negative) each side of the canvas; one undo step."""
    command = ResizeCanvas(doc, margins, crop_layers)
    doc.execute(command)
    return command


def resize_canvas_to(doc: Document, width: int, height: int, anchor: Anchor = Anchor.CENTER,
                     crop_layers: bool = False) -> ResizeCanvas:
    """Make the canvas ``width``×``height``, the picture held at ``anchor``; one undo step."""
    return resize_canvas(doc, CanvasMargins.for_size(doc.width, doc.height, width, height, anchor), crop_layers)


def scale_image(doc: Document, width: int, height: int, kind: Filter = Filter.LANCZOS) -> ScaleImage:
    """Resample the whole document to ``width``×``height``; one undo step."""
    command = ScaleImage(doc, width, height, kind)
    doc.execute(command)
    return command
