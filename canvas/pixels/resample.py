"""Resampling pictures and coverage to a new scale: Lanczos or area averaging, in numpy.

Image → Image size scales every layer of a document by the same factors; each layer is
resampled as a picture of its own (as GIMP scales layers): its content's bounding box in
document space is the domain, pixels outside it do not exist (weights falling outside
are dropped and the rest renormalised), so an opaque layer stays opaque to its edges and
a constant colour stays exactly that colour. Every layer is sampled on the same grid —
output pixel ``u`` (document space after scaling) is centred on ``(u + 0.5) / scale`` in
the source document — so layers stay aligned with each other whatever their offsets.

- :attr:`Filter.LANCZOS`: Lanczos-3, widened by ``1 / scale`` when shrinking (no aliasing),
  as Pillow's ``LANCZOS`` does. Sharp; may ring a little around hard edges.
- :attr:`Filter.AREA`: each output pixel is the average of the source pixels its footprint
  covers, weighted by the covered fraction (OpenCV's ``INTER_AREA`` when shrinking). Never
  rings; enlarging with it repeats pixels (blocky).

Pictures are resampled with premultiplied colour (:func:`scale_surface`), so transparent
pixels' colours never bleed into opaque ones. Values are float32 throughout.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

import numpy as np
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.tiles import TILE, TiledSurface

__all__ = [
    "AxisWeights", "Filter", "axis_weights", "default_workers", "output_span", "resample_bands",
    "resize", "scale_surface",
]

_LANCZOS_A = 3


class Filter(Enum):
    """How pixels are resampled (see the module docstring)."""

    LANCZOS = "lanczos"
    AREA = "area"

    @property
    def label(self) -> str:
        return {"lanczos": "Lanczos (sharp)", "area": "Area (smooth, no ringing)"}[self.value]


@dataclass(frozen=True)
class AxisWeights:
    """One axis of a resampling: output pixel ``k`` (the ``k``-th of ``dst``) is
    ``sum_t values[index[k, t]] * weight[k, t]``. ``index`` holds absolute source
    coordinates (int64, inside ``src``), ``weight`` float32 rows summing to 1."""

    dst: tuple[int, int]
    index: np.ndarray
    weight: np.ndarray

    def part(self, start: int, stop: int) -> AxisWeights:
        """The weights of outputs ``start <= u < stop`` (absolute output coordinates)."""
        lo, hi = start - self.dst[0], stop - self.dst[0]
        return AxisWeights((start, stop), self.index[lo:hi], self.weight[lo:hi])

    def source_span(self) -> tuple[int, int]:
        """The source pixels ``[a, b)`` these outputs read."""
        return int(self.index.min()), int(self.index.max()) + 1

    def apply(self, values: np.ndarray, axis: int, origin: int) -> np.ndarray:
        """Resample ``values`` (float32) along ``axis``, whose index 0 is source
        coordinate ``origin``; the result holds the outputs of :attr:`dst` on that axis."""
        moved = np.ascontiguousarray(np.moveaxis(values, axis, 0), np.float32)
        index = self.index - origin
        out = np.zeros((index.shape[0], *moved.shape[1:]), np.float32)
        tap = np.empty_like(out)
        shape = (-1,) + (1,) * (moved.ndim - 1)
        for t in range(index.shape[1]):
            np.take(moved, index[:, t], axis=0, out=tap, mode="clip")  # valid already; unbuffered
            tap *= self.weight[:, t].reshape(shape)
            out += tap
        return np.moveaxis(out, 0, axis)


def _lanczos(x: np.ndarray) -> np.ndarray:
    a = _LANCZOS_A
    out = np.sinc(x) * np.sinc(x / a)
    out[np.abs(x) >= a] = 0.0
    return out


def axis_weights(src: tuple[int, int], dst: tuple[int, int], scale: float, kind: Filter) -> AxisWeights:
    """Weights mapping source pixels ``src[0] <= i < src[1]`` to output pixels
    ``dst[0] <= u < dst[1]`` of an axis scaled by ``scale`` (output = source × scale),
    both in their own absolute coordinates; sources outside ``src`` do not exist."""
    s0, s1 = src
    if s1 <= s0 or dst[1] <= dst[0] or not scale > 0:
        raise ValueError(f"cannot resample source {src} to {dst} at scale {scale}")
    u = np.arange(dst[0], dst[1], dtype=np.float64)
    centre = (u + 0.5) / scale
    if kind is Filter.LANCZOS:
        stretch = max(1.0, 1.0 / scale)
        support = _LANCZOS_A * stretch
        first = np.floor(centre - support).astype(np.int64)
        taps = int(math.ceil(2 * support)) + 2
        index = first[:, None] + np.arange(taps)
        weight = _lanczos((index + 0.5 - centre[:, None]) / stretch)
    else:
        left, right = u / scale, (u + 1) / scale
        first = np.floor(left).astype(np.int64)
        taps = int(math.ceil(1.0 / scale)) + 2
        index = first[:, None] + np.arange(taps)
        weight = np.clip(
            np.minimum(index + 1, right[:, None]) - np.maximum(index, left[:, None]), 0.0, None
        )
    weight = np.where((index >= s0) & (index < s1), weight, 0.0)
    total = weight.sum(axis=1)
    lost = np.abs(total) < 1e-9  # no source under the filter: take the nearest pixel
    if lost.any():
        nearest = np.clip(np.floor(centre[lost]).astype(np.int64), s0, s1 - 1)
        index[lost, 0] = nearest
        weight[lost, 0] = 1.0
        weight[lost, 1:] = 0.0
        total = weight.sum(axis=1)
    weight = weight / total[:, None]
    used = np.flatnonzero((weight != 0).any(axis=0))
    weight = weight[:, used[0]: used[-1] + 1]
    index = np.clip(index[:, used[0]: used[-1] + 1], s0, s1 - 1)
    return AxisWeights(dst, index, weight.astype(np.float32))


def output_span(start: int, stop: int, scale: float) -> tuple[int, int]:
    """Where source pixels ``[start, stop)`` land at ``scale``: rounded, at least one pixel."""
    a = math.floor(start * scale + 0.5)
    b = math.floor(stop * scale + 0.5)
    return a, max(b, a + 1)


def resample_bands(
    read: Callable[[Rect], np.ndarray],
    src: Rect,
    dst: Rect,
    scale_x: float,
    scale_y: float,
    kind: Filter,
    band_starts: Callable[[int, int], list[int]] | None = None,
    finish: Callable[[np.ndarray], np.ndarray] | None = None,
    workers: int = 1,
) -> Iterator[tuple[int, np.ndarray]]:
    """Resample the picture over ``src`` to ``dst`` a band of output rows at a time.

    ``read(rect)`` returns float32 ``(rect.h, rect.w, C)`` values of the source (``rect``
    inside ``src``, same coordinates as ``src``); yields ``(row, values)``, top band
    first: float32 ``(h, dst.w, C)`` outputs for rows ``row .. row + h`` (``dst``'s
    coordinates), passed through ``finish`` when given. ``band_starts(a, b)`` splits the
    output rows (default: 256 a band); ``workers`` > 1 resamples bands on that many
    threads (numpy releases the GIL; ``read`` and ``finish`` must be thread-safe).
    """
    wx = axis_weights((src.x, src.x1), (dst.x, dst.x1), scale_x, kind)
    wy = axis_weights((src.y, src.y1), (dst.y, dst.y1), scale_y, kind)
    cuts = band_starts(dst.y, dst.y1) if band_starts else list(range(dst.y, dst.y1, TILE))
    cuts = sorted({c for c in cuts if dst.y <= c < dst.y1} | {dst.y}) + [dst.y1]

    def band(r0: int, r1: int) -> tuple[int, np.ndarray]:
        rows = wy.part(r0, r1)
        a, b = rows.source_span()
        values = read(Rect(src.x, a, src.w, b - a))
        out = rows.apply(wx.apply(values, 1, src.x), 0, a)
        return r0, out if finish is None else finish(out)

    spans = list(zip(cuts[:-1], cuts[1:]))
    if workers <= 1 or len(spans) == 1:
        for r0, r1 in spans:
            yield band(r0, r1)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[tuple[int, np.ndarray]]] = deque()
        for r0, r1 in spans:  # at most 2 × workers bands in flight
            pending.append(pool.submit(band, r0, r1))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_workers() -> int:
    """Threads for resampling a big picture: the cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def resize(values: np.ndarray, width: int, height: int, kind: Filter) -> np.ndarray:
    """Resample a whole float array ``(h, w)`` or ``(h, w, C)`` to ``(height, width[, C])``."""
    flat = values.ndim == 2
    data = values[..., None] if flat else values
    h, w = data.shape[:2]
    out = np.empty((height, width, data.shape[2]), np.float32)
    for row, band in resample_bands(
        lambda r: data[r.slices()].astype(np.float32, copy=False),
        Rect(0, 0, w, h), Rect(0, 0, width, height), width / w, height / h, kind,
    ):
        out[row: row + band.shape[0]] = band
    return out[..., 0] if flat else out


def _premultiplied(pixels: np.ndarray) -> np.ndarray:
    out = pixels.astype(np.float32)
    out[..., 3] *= np.float32(1 / 255)
    out[..., :3] *= out[..., 3:4]
    return out


def _straight(values: np.ndarray) -> np.ndarray:
    """Premultiplied float values (colour 0..255, alpha 0..1) → straight RGBA uint8."""
    alpha = values[..., 3:4]
    np.clip(alpha, 0.0, 1.0, out=alpha)
    colour = values[..., :3]
    colour /= np.maximum(alpha, np.float32(1e-6))
    alpha *= np.float32(255)
    values += np.float32(0.5)
    np.clip(values, 0, 255, out=values)
    out = values.astype(np.uint8)
    out[out[..., 3] == 0] = 0  # no colour where nothing shows
    return out


def scale_surface(
    surface: TiledSurface,
    old_offset: tuple[int, int],
    new_offset: tuple[int, int],
    scale_x: float,
    scale_y: float,
    kind: Filter,
    workers: int | None = None,
) -> TiledSurface:
    """A new surface holding ``surface`` scaled by ``scale_x``/``scale_y`` in document space.

    ``old_offset`` is where ``surface``'s origin sat in the old document, ``new_offset``
    where the new surface's origin sits in the scaled one (the layer's scaled offsets);
    the content's bounds in document space scale to rounded bounds (see
    :func:`output_span`), so a layer lands where it belongs whatever its offsets' rounding.
    Straight RGBA uint8 in and out, resampled premultiplied; ``workers`` threads (default
    :func:`default_workers`).
    """
    workers = default_workers() if workers is None else workers
    out = TiledSurface()
    bounds = surface.bounds()
    if bounds.empty:
        return out
    ox, oy = old_offset
    nx, ny = new_offset
    src = bounds.translate(ox, oy)
    x0, x1 = output_span(src.x, src.x1, scale_x)
    y0, y1 = output_span(src.y, src.y1, scale_y)
    dst = Rect.from_bounds(x0, y0, x1, y1)

    def bands(a: int, b: int) -> list[int]:  # output bands on the new surface's tile rows
        first = (a - ny) // TILE * TILE + ny
        return list(range(first, b, TILE))

    for row, pixels in resample_bands(
        lambda r: _premultiplied(surface.read(r.translate(-ox, -oy))),
        src, dst, scale_x, scale_y, kind, bands, _straight, workers,
    ):
        out.write(dst.x - nx, row - ny, pixels)
    return out
