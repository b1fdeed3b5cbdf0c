"""Tiles over a large picture, and the seamless blend of their results (numpy only).

A picture of ``width × height`` pixels is cut into tiles of at most ``tile × tile`` pixels
that cover it exactly: on each axis the first tile starts at 0, the last ends flush with the
edge, and neighbours overlap by **at least** ``overlap`` pixels (the spare length is spread
evenly, so the overlaps differ by at most one pixel). A side no longer than ``tile`` is one
tile of that side's length.

Blending: each tile's result is weighted by a separable feather, ``a(x) · b(y)``, where the
1-D weight ramps linearly across each overlap with a neighbour (``(d + 0.5) / overlap`` at
``d`` pixels from the tile's inner edge) and is 1 elsewhere, including along the picture's
border. The 1-D weights are then divided by their sum over the tiles of that axis, so the
weights of all tiles covering a pixel sum to 1 (to float rounding): a constant picture
stays exactly constant, no seam and no gain, even where three tiles overlap (a short side
just above ``tile`` with a large overlap).

Memory: :class:`TileBlender` rounds each pixel into the ``uint8`` picture as soon as its
last tile is in, and keeps float32 sums only for the overlaps still open (about
``overlap × width`` pixels): a 8192² result in 1024 px tiles with 64 px overlaps costs
its 192 MiB of bytes and 6 MiB of sums, never a float copy of it all.

Coordinates are pixels, top-left origin, ``(x, y, w, h)`` like :class:`~sfumato.canvas.model.geometry.Rect`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Tile", "TileBlender", "TileGrid", "axis_spans", "axis_weights", "tile_grid"]


@dataclass(frozen=True)
class Tile:
    """One tile: ``index`` in raster order (rows top to bottom, left to right in a row),
    its ``row``/``column`` in the grid, and its rectangle in the picture's pixels."""

    index: int
    row: int
    column: int
    x: int
    y: int
    w: int
    h: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``picture[tile.slices]`` is this tile's pixels."""
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


def axis_spans(length: int, tile: int, overlap: int) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` of the tiles along one axis of ``length`` pixels.

    The fewest tiles of at most ``tile`` pixels whose neighbours overlap by at least
    ``overlap``; the first starts at 0, the last ends at ``length``, starts spread evenly.
    """
    if length <= 0:
        raise ValueError(f"cannot tile an empty side ({length} px)")
    if tile <= 0:
        raise ValueError(f"the tile side must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"the overlap must be at least 0 and less than the tile ({tile} px), got {overlap}")
    if length <= tile:
        return ((0, length),)
    count = math.ceil((length - overlap) / (tile - overlap))
    spare = length - tile
    # floor(i * spare / (count - 1)): consecutive starts differ by at most ceil(spare / (count - 1))
    # <= tile - overlap (by the choice of count), so every overlap is at least `overlap`.
    return tuple((i * spare // (count - 1), i * spare // (count - 1) + tile) for i in range(count))


def axis_weights(spans: tuple[tuple[int, int], ...], length: int) -> tuple[np.ndarray, ...]:
    """The normalised 1-D feather of each span (float64, one array per span, its length):
    linear ramps across the overlaps with the neighbours, divided by the sum over all spans,
    so the weights at every position sum to 1."""
    raw: list[np.ndarray] = []
    for i, (start, end) in enumerate(spans):
        d = np.arange(end - start, dtype=np.float64)
        w = np.ones(end - start, dtype=np.float64)
        if i > 0:
            left = spans[i - 1][1] - start  # overlap with the previous span
            if left > 0:
                w = np.minimum(w, (d + 0.5) / left)
        if i + 1 < len(spans):
            right = end - spans[i + 1][0]
            if right > 0:
                w = np.minimum(w, (end - start - d - 0.5) / right)
        raw.append(w)
    total = np.zeros(length, dtype=np.float64)
    for (start, end), w in zip(spans, raw, strict=True):
        total[start:end] += w
    return tuple(w / total[start:end] for (start, end), w in zip(spans, raw, strict=True))


@dataclass(frozen=True)
class TileGrid:
    """The tiles of a ``width × height`` picture and their blend weights."""

    width: int
    height: int
    tile: int
    overlap: int
    columns: tuple[tuple[int, int], ...]
    rows: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.columns) * len(self.rows)

    def __iter__(self) -> Iterator[Tile]:
        index = 0
        for r, (y0, y1) in enumerate(self.rows):
            for c, (x0, x1) in enumerate(self.columns):
                yield Tile(index, r, c, x0, y0, x1 - x0, y1 - y0)
                index += 1

    @property
    def tiles(self) -> tuple[Tile, ...]:
        return tuple(self)

    def weight(self, tile: Tile) -> np.ndarray:
        """float32 ``(tile.h, tile.w)``: this tile's share of each of its pixels."""
        wx = axis_weights(self.columns, self.width)[tile.column]
        wy = axis_weights(self.rows, self.height)[tile.row]
        return np.outer(wy, wx).astype(np.float32)


def tile_grid(width: int, height: int, tile: int, overlap: int) -> TileGrid:
    """Tiles of at most ``tile`` px a side covering ``width × height`` exactly (module doc)."""
    return TileGrid(
        width, height, tile, overlap,
        columns=axis_spans(width, tile, overlap),
        rows=axis_spans(height, tile, overlap),
    )


class TileBlender:
    """Accumulates tile results into one ``uint8`` picture with the grid's feathered weights.

    Tiles must be added in raster order (:class:`TileGrid`'s). A pixel is rounded into
    :attr:`picture` as soon as the last tile covering it has been added; until then its
    weighted sum is kept in float32, in one of two places:

    - the *carry*: the rows the next row of tiles overlaps (``end of this row − start of
      the next`` rows, the whole width), handed from one tile row to the next. One buffer
      serves both rows: a column range's old sums are read and its new ones written by
      the same tile, and no later tile of the row touches those columns;
    - the *pending* columns: within the current tile row, the columns the next tile of the
      row overlaps (the row's height × the overlap).

    So besides the picture the blend holds about ``overlap × width`` float pixels, never a
    row of tiles.
    """

    def __init__(self, grid: TileGrid, channels: int = 3) -> None:
        self.grid = grid
        self.channels = channels
        self.picture = np.zeros((grid.height, grid.width, channels), dtype=np.uint8)
        self._wx = axis_weights(grid.columns, grid.width)
        self._wy = axis_weights(grid.rows, grid.height)
        rows = grid.rows
        most = max((rows[i][1] - rows[i + 1][0] for i in range(len(rows) - 1)), default=0)
        self._carry = np.zeros((most, grid.width, channels), np.float32)
        self._carry_rows = 0  # how many of its rows hold sums (from the current row's top)
        self._pending: np.ndarray | None = None  # float (row height, cols) from the tile before
        self._next = 0  # index of the tile expected next

    @property
    def band_bytes(self) -> int:
        """Bytes of float sums the blend holds now (the carry and the pending columns)."""
        pending = 0 if self._pending is None else self._pending.nbytes
        return int(self._carry.nbytes + pending)

    def add(self, tile: Tile, image: np.ndarray) -> None:
        """Add ``image``, uint8 (or float) ``(tile.h, tile.w, C)``, the result for ``tile``."""
        if tile.index != self._next:
            raise ValueError(f"tiles must be added in order: expected {self._next}, got {tile.index}")
        if image.shape[:2] != (tile.h, tile.w):
            raise ValueError(f"tile {tile.index} is {tile.w}x{tile.h} but its result is {image.shape[1]}x{image.shape[0]}")
        self._next += 1
        grid = self.grid
        columns, rows = grid.columns, grid.rows
        weight = np.outer(self._wy[tile.row], self._wx[tile.column]).astype(np.float32)
        acc = image[..., : self.channels].astype(np.float32)
        acc *= weight[..., None]
        if tile.column > 0 and self._pending is not None:  # the previous tile's columns over this one
            acc[:, : self._pending.shape[1]] += self._pending
        last_column = tile.column == len(columns) - 1
        last_row = tile.row == len(rows) - 1
        close = tile.w if last_column else columns[tile.column + 1][0] - tile.x  # columns done after this tile
        self._pending = None if last_column else acc[:, close:].copy()
        done = acc[:, :close]
        cols = slice(tile.x, tile.x + close)
        if self._carry_rows:  # what the rows above left on this row's top rows
            done[: self._carry_rows] += self._carry[: self._carry_rows, cols]
        final = tile.h if last_row else rows[tile.row + 1][0] - tile.y  # rows done after this row
        np.rint(done[:final], out=done[:final])
        np.clip(done[:final], 0, 255, out=done[:final])
        self.picture[tile.y : tile.y + final, cols] = done[:final]
        if final < tile.h:  # the rows the next tile row overlaps: the next row's carry
            self._carry[: tile.h - final, cols] = done[final:]
        if last_column:  # the row is done: the carry now holds the next row's top rows
            self._carry_rows = 0 if last_row else tile.h - final

    def result(self) -> np.ndarray:
        """The blended picture (uint8), once every tile has been added."""
        if self._next != len(self.grid):
            raise ValueError(f"{len(self.grid) - self._next} tile(s) were not added")
        return self.picture
