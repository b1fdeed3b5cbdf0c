"""Integer rectangles in document pixel space (origin top-left, x right, y down)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Rect:
    """A half-open pixel rectangle ``[x, x + w) × [y, y + h)``; empty when w or h <= 0."""

    x: int
    y: int
    w: int
    h: int

    @staticmethod
    def from_bounds(x0: int, y0: int, x1: int, y1: int) -> Rect:
        return Rect(x0, y0, x1 - x0, y1 - y0)

    @property
    def x1(self) -> int:
        return self.x + self.w

    @property
    def y1(self) -> int:
        return self.y + self.h

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    @property
    def area(self) -> int:
        return 0 if self.empty else self.w * self.h

    def intersect(self, other: Rect) -> Rect:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        if x1 <= x0 or y1 <= y0:
            return Rect(x0, y0, 0, 0)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def union(self, other: Rect) -> Rect:
        if self.empty:
            return other
        if other.empty:
            return self
        return Rect.from_bounds(
            min(self.x, other.x), min(self.y, other.y), max(self.x1, other.x1), max(self.y1, other.y1)
        )

    def translate(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.w, self.h)

    def grow(self, by: int) -> Rect:
        return Rect(self.x - by, self.y - by, self.w + 2 * by, self.h + 2 * by)

    def contains(self, other: Rect) -> bool:
        return (
            other.x >= self.x and other.y >= self.y and other.x1 <= self.x1 and other.y1 <= self.y1
        )

    def slices(self, origin_x: int = 0, origin_y: int = 0) -> tuple[slice, slice]:
        """Numpy ``[rows, cols]`` slices of this rect in an array whose (0, 0) is at the origin."""
        return (
            slice(self.y - origin_y, self.y1 - origin_y),
            slice(self.x - origin_x, self.x1 - origin_x),
        )

    def tiles(self, tile: int) -> Iterator[tuple[int, int]]:
        """Indices ``(tx, ty)`` of the ``tile``-sized grid cells this rect touches."""
        if self.empty:
            return
        for ty in range(self.y // tile, (self.y1 - 1) // tile + 1):
            for tx in range(self.x // tile, (self.x1 - 1) // tile + 1):
                yield tx, ty


def nonzero_bounds(array: np.ndarray) -> Rect:
    """Bounding rect of the non-zero (``True``) entries of a 2-D array, in the array's own
    index space (``x`` = column, ``y`` = row); empty (``Rect(0, 0, 0, 0)``) when there are none.

    >>> nonzero_bounds(np.array([[0, 0, 0], [0, 5, 1], [0, 0, 0]]))
    Rect(x=1, y=1, w=2, h=1)
    """
    rows = np.flatnonzero(array.any(axis=1))
    if rows.size == 0:
        return Rect(0, 0, 0, 0)
    cols = np.flatnonzero(array.any(axis=0))
    return Rect.from_bounds(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
