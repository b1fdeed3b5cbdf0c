"""Integer rectangles in document pixel space (origin top-left, x right, y down)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


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


def bounding_rect(rects: list[Rect]) -> Rect:
    out = Rect(0, 0, 0, 0)
    for r in rects:
        out = out.union(r)
    return out
