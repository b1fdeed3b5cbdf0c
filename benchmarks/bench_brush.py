"""Brush engine figures: time per dab, per stroke segment, and undo memory.

Prints a table; ``--json PATH`` writes the figures. Timings are medians (the machine is
shared and noisy). Dabs and segments are laid over fresh canvas (each dab at a new place
along rows across the layer, so every tile is met for the first time in the stroke, as
in painting: its undo copy is taken, nothing is warm); ``dab_*_same_spot_ms`` repeats one
spot with warm caches, for comparison only. Undo memory is ``doc.history.nbytes()`` after 100 strokes on a 4096²
layer that is opaque everywhere (the worst case: every touched pixel had content before).

    python benchmarks/bench_brush.py [--json out.json] [--strokes 100]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time

import numpy as np
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.paint.brush import Brush, Stroke

SIDE = 4096


def _document() -> tuple[Document, PixelLayer]:
    doc = Document(SIDE, SIDE)
    pixels = np.empty((SIDE, SIDE, 4), np.uint8)
    pixels[...] = (120, 130, 140, 255)
    layer = PixelLayer("filled", TiledSurface.from_array(pixels))
    del pixels
    editing.add_layer(doc, layer)
    doc.history.clear()
    return doc, layer


def time_dabs(doc: Document, layer: PixelLayer, size: float, hardness: float, n: int, fresh: bool = True) -> float:
    """Median seconds to render one dab inside one stroke.

    ``fresh``: dabs walk along rows across the layer at the brush's spacing (a new
    position, sub-pixel offset and, often, tile each time); otherwise they repeat one spot
    with small sub-pixel offsets (warm caches, the old figure)."""
    stroke = Stroke(doc, layer, Brush(size=size, hardness=hardness, size_pressure=None))
    stroke.add_point(100.0, 100.0)
    step = max(1.0, 0.15 * size) + 0.37
    per_row = int((SIDE - 2 * size - 100) / step)
    times = []
    for i in range(n):
        if fresh:
            row, col = divmod(i, per_row)
            x = 100.0 + size + col * step
            y = 100.0 + size + row * 1.3 * size + (col % 7) * 0.29
        else:
            x = 1000.0 + (i % 9) * 0.37
            y = 1000.0 + (i % 7) * 0.29
        t0 = time.perf_counter()
        stroke.dab(x, y, 1.0)  # the unit the engine repeats along a path
        times.append(time.perf_counter() - t0)
    stroke.abort()
    return statistics.median(times)


def time_segments(doc: Document, layer: PixelLayer, size: float, n: int) -> float:
    """Mean seconds for one ``add_point`` moving ~8.5 px (a 125 Hz pen at ~1000 px/s).

    A mean, not a median: with big brushes most events lay no dab (spacing > 8 px)."""
    stroke = Stroke(doc, layer, Brush(size=size, hardness=0.7, size_pressure=None))
    stroke.add_point(500.0, 500.0)
    times = []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        stroke.add_point(500.0 + 8 * i, 500.0 + 3 * i, 0.9)
        times.append(time.perf_counter() - t0)
    stroke.abort()
    return statistics.fmean(times)


def undo_memory(doc: Document, layer: PixelLayer, strokes: int, size: float) -> tuple[int, float]:
    """History bytes after ``strokes`` random 300-px strokes, and the mean seconds per stroke."""
    rng = random.Random(1)
    doc.history.configure(max_steps=max(strokes, 1), max_bytes=1 << 40)
    brush = Brush(size=size, hardness=0.6, color=(200, 30, 30))
    t0 = time.perf_counter()
    for _ in range(strokes):
        x, y = rng.uniform(100, SIDE - 400), rng.uniform(100, SIDE - 400)
        stroke = Stroke(doc, layer, brush)
        bend = rng.uniform(10, 40)
        for k in range(31):  # a gently curved 300 px stroke with varying pressure
            stroke.add_point(x + 10 * k, y + bend * math.sin(k / 5), 0.6 + 0.4 * math.sin(k / 7))
        stroke.end()
    elapsed = (time.perf_counter() - t0) / max(strokes, 1)
    assert doc.history.undo_count == strokes
    return doc.history.nbytes(), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--strokes", type=int, default=100)
    args = parser.parse_args()

    doc, layer = _document()
    figures: dict[str, float] = {}
    for size in (16, 64, 256):
        n = 400 if size < 256 else 60
        figures[f"dab_{size}px_ms"] = time_dabs(doc, layer, size, 0.7, n) * 1e3
        figures[f"dab_{size}px_same_spot_ms"] = time_dabs(doc, layer, size, 0.7, n, fresh=False) * 1e3
    for size in (64, 256):
        figures[f"segment_{size}px_ms"] = time_segments(doc, layer, size, 60) * 1e3
    nbytes, per_stroke = undo_memory(doc, layer, args.strokes, 64)
    figures["undo_mb_100_strokes_64px"] = nbytes / 1e6
    figures["stroke_64px_300px_ms"] = per_stroke * 1e3

    print(f"{'figure':34} {'value':>10}  target   (dabs over fresh canvas unless 'same_spot')")
    targets = {"dab_64px_ms": "< 1 ms", "undo_mb_100_strokes_64px": "<= 50 MB"}
    for name, value in figures.items():
        print(f"{name:34} {value:10.3f}  {targets.get(name, '')}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
