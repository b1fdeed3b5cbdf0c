"""Sparse tiled pixel storage with copy-on-write snapshots.

Pixels are **straight-alpha RGBA uint8** (exactly what PNG and OpenRaster store, so a file
round-trips byte for byte) in ``TILE``×``TILE`` tiles keyed by tile index ``(tx, ty)``;
tile ``(tx, ty)`` covers surface pixels ``[tx*TILE, (tx+1)*TILE) × [ty*TILE, (ty+1)*TILE)``.
A missing tile is fully transparent. Coordinates are the surface's own (layer-local)
pixel space; a layer's x/y offset is applied by the compositor, not here.

Snapshots follow MyPaint's ``save_snapshot``: the tile dict is shallow-copied and every
tile is made read-only, so a snapshot costs one dict copy and undo memory grows only by
the tiles that change afterwards (a write to a read-only tile copies it first).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NewType

import numpy as np
from sfumato.canvas.model.geometry import Rect, nonzero_bounds

TILE = 256

TileKey = tuple[int, int]
Snapshot = NewType("Snapshot", dict[TileKey, np.ndarray])

_EMPTY = np.zeros((TILE, TILE, 4), np.uint8)
_EMPTY.setflags(write=False)


class TiledSurface:
    """An unbounded, sparse RGBA uint8 surface (straight alpha)."""

    __slots__ = ("_tiles",)

    def __init__(self) -> None:
        self._tiles: dict[TileKey, np.ndarray] = {}

    # -- tiles -------------------------------------------------------------------------
    def tile_keys(self) -> list[TileKey]:
        return list(self._tiles)

    def tile(self, key: TileKey) -> np.ndarray:
        """The tile's pixels, read-only view; a shared all-zero tile where none exists."""
        t = self._tiles.get(key)
        if t is None:
            return _EMPTY
        view = t.view()
        view.setflags(write=False)
        return view

    def has_tile(self, key: TileKey) -> bool:
        return key in self._tiles

    def writable_tile(self, key: TileKey) -> np.ndarray:
        """The tile's pixels for writing, copied first if a snapshot shares it."""
        t = self._tiles.get(key)
        if t is None:
            t = np.zeros((TILE, TILE, 4), np.uint8)
            self._tiles[key] = t
        elif not t.flags.writeable:
            t = t.copy()
            self._tiles[key] = t
        return t

    def frozen_tile(self, key: TileKey) -> np.ndarray | None:
        """The tile's own array made read-only (a later write copies it first, as after a
        snapshot), or None where there is no tile: a reference safe to read on another
        thread while painting goes on."""
        t = self._tiles.get(key)
        if t is not None:
            t.setflags(write=False)
        return t

    def put_tile(self, key: TileKey, tile: np.ndarray | None) -> None:
        """Make ``tile`` (read-only, shared) the tile at ``key``; None removes the tile."""
        if tile is None:
            self._tiles.pop(key, None)
        else:
            tile.setflags(write=False)
            self._tiles[key] = tile

    def drop_tile(self, key: TileKey) -> None:
        self._tiles.pop(key, None)

    def drop_empty_tiles(self, keys: list[TileKey] | None = None) -> None:
        """Forget tiles whose alpha is all zero (keeps the surface sparse)."""
        for key in list(self._tiles) if keys is None else keys:
            t = self._tiles.get(key)
            if t is not None and not t[..., 3].any():
                del self._tiles[key]

    # -- rectangles --------------------------------------------------------------------
    def read(self, rect: Rect) -> np.ndarray:
        """A new ``(h, w, 4)`` uint8 array with the pixels of ``rect`` (surface space)."""
        out = np.zeros((max(rect.h, 0), max(rect.w, 0), 4), np.uint8)
        for key, t in self._overlapping(rect):
            tr = tile_rect(key).intersect(rect)
            out[tr.slices(rect.x, rect.y)] = t[tr.slices(key[0] * TILE, key[1] * TILE)]
        return out

    def write(self, x: int, y: int, pixels: np.ndarray) -> Rect:
        """Replace the pixels at ``(x, y)`` with ``pixels`` (``(h, w, 4)`` uint8); returns the rect."""
        if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
            raise ValueError(f"expected (h, w, 4) uint8 pixels, got {pixels.shape} {pixels.dtype}")
        rect = Rect(x, y, pixels.shape[1], pixels.shape[0])
        for key in rect.tiles(TILE):
            tr = tile_rect(key).intersect(rect)
            src = pixels[tr.slices(rect.x, rect.y)]
            if key not in self._tiles and not src[..., 3].any():
                continue  # writing transparency into nothing stays nothing
            self.writable_tile(key)[tr.slices(key[0] * TILE, key[1] * TILE)] = src
        return rect

    def clear(self) -> None:
        self._tiles.clear()

    def bounds(self) -> Rect:
        """Bounding rect of the pixels with alpha > 0 (surface space); empty if none."""
        out = Rect(0, 0, 0, 0)
        for (tx, ty), t in self._tiles.items():
            out = out.union(nonzero_bounds(t[..., 3]).translate(tx * TILE, ty * TILE))
        return out

    def is_empty(self) -> bool:
        return not any(t[..., 3].any() for t in self._tiles.values())

    # -- snapshots (undo) ----------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """A cheap copy-on-write copy of the current state (see module docstring)."""
        for t in self._tiles.values():
            t.setflags(write=False)
        return Snapshot(dict(self._tiles))

    def restore(self, snapshot: Snapshot, keys: list[TileKey] | None = None) -> None:
        """Return to ``snapshot`` (only the given tiles, when ``keys`` is given)."""
        if keys is None:
            for t in snapshot.values():
                t.setflags(write=False)
            self._tiles = dict(snapshot)
            return
        for key in keys:
            saved = snapshot.get(key)
            if saved is None:
                self._tiles.pop(key, None)
            else:
                saved.setflags(write=False)
                self._tiles[key] = saved

    def copy(self) -> TiledSurface:
        dup = TiledSurface()
        dup._tiles = dict(self.snapshot())
        return dup

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._tiles.values())

    def _overlapping(self, rect: Rect) -> Iterator[tuple[TileKey, np.ndarray]]:
        for key in rect.tiles(TILE):
            t = self._tiles.get(key)
            if t is not None:
                yield key, t

    @classmethod
    def from_array(cls, pixels: np.ndarray, x: int = 0, y: int = 0) -> TiledSurface:
        surface = cls()
        surface.write(x, y, pixels)
        return surface


def tile_rect(key: TileKey) -> Rect:
    """The surface-space rectangle covered by tile ``key``."""
    return Rect(key[0] * TILE, key[1] * TILE, TILE, TILE)
