"""Canvas figures from the foundation issue, on a 4096² document with 20 visible layers.

Each layer holds a few large soft blobs covering roughly a quarter of the canvas, with
mixed blend modes (the separable modes QPainter also has, so the comparison does the
same work on both sides). Measured, medians unless said otherwise:

(a) one stroke segment — dab rendering (``sfumato.canvas.paint.brush``), the dirty-tile
    recomposite (:class:`~sfumato.canvas.render.compositor.Compositor`) and the buffer the view
    draws (each dirty tile converted to a premultiplied QImage, as ``CanvasView`` does) —
    for a 64 px and a 256 px brush, painting on a middle layer (non-normal modes above:
    the fallback path) and on the top layer (projections only);
(b) against QPainter compositing the same 20 layers (premultiplied ARGB32 images, the
    same composition modes) in the same run, two ratios, labelled by what they compare:
    - equal work: every tile composited from scratch / QPainter compositing the whole
      canvas (``scratch_vs_qpainter_ratio``, target <= 1.5x), and the window's
      recomposite of the tiles a middle layer's visibility toggle dirties / QPainter
      compositing only those tiles (clipped; ``toggle_vs_qpainter_same_tiles_ratio``,
      target <= 1.5x);
    - what the window saves: that dirty-tile recomposite / QPainter compositing the
      whole canvas (``toggle_dirty_tiles_vs_qpainter_whole_ratio``, target <= 1.5x:
      not equal work, the tiles are a part of the canvas);
(c) memory held by undo after 100 strokes of a 64 px brush;
(d) 20,000 dabs drawn with QPainter calls in one process (the PySide6 6.12 regression).

Timings are wall-clock; ``*_cpu_*`` figures are the CPU time this process spent, which
the load of a shared machine distorts far less (targets are judged on wall-clock).

    python benchmarks/bench_canvas.py [--json out.json] [--quick]

PySide6 is imported here (benchmarks are outside the rooms) for the QPainter reference.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from documents import LAYERS, SIDE, build_document  # noqa: E402
from PySide6.QtCore import QRectF  # noqa: E402
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QImage, QPainter, QPen, QRegion  # noqa: E402
from sfumato.canvas.model.document import Document  # noqa: E402
from sfumato.canvas.model.geometry import Rect  # noqa: E402
from sfumato.canvas.model.layers import PixelLayer  # noqa: E402
from sfumato.canvas.model.tiles import TILE  # noqa: E402
from sfumato.canvas.paint.brush import Brush, Stroke  # noqa: E402
from sfumato.canvas.pixels.blend import BlendMode  # noqa: E402
from sfumato.canvas.render.composite import flatten  # noqa: E402
from sfumato.canvas.render.compositor import Compositor  # noqa: E402

QT_MODES = {
    BlendMode.NORMAL: QPainter.CompositionMode.CompositionMode_SourceOver,
    BlendMode.MULTIPLY: QPainter.CompositionMode.CompositionMode_Multiply,
    BlendMode.SCREEN: QPainter.CompositionMode.CompositionMode_Screen,
    BlendMode.OVERLAY: QPainter.CompositionMode.CompositionMode_Overlay,
    BlendMode.DARKEN: QPainter.CompositionMode.CompositionMode_Darken,
    BlendMode.LIGHTEN: QPainter.CompositionMode.CompositionMode_Lighten,
    BlendMode.COLOR_DODGE: QPainter.CompositionMode.CompositionMode_ColorDodge,
    BlendMode.COLOR_BURN: QPainter.CompositionMode.CompositionMode_ColorBurn,
    BlendMode.HARD_LIGHT: QPainter.CompositionMode.CompositionMode_HardLight,
    BlendMode.SOFT_LIGHT: QPainter.CompositionMode.CompositionMode_SoftLight,
    BlendMode.DIFFERENCE: QPainter.CompositionMode.CompositionMode_Difference,
}


def coverage(doc: Document) -> float:
    total = 0
    for layer in doc.pixel_layers():
        for key in layer.surface.tile_keys():
            total += int(np.count_nonzero(layer.surface.tile(key)[..., 3]))
    return total / (doc.width * doc.height * LAYERS)


# -- helpers ----------------------------------------------------------------------------------
def to_qimage(pixels: np.ndarray) -> QImage:
    """Straight RGBA uint8 -> premultiplied ARGB32 QImage (what CanvasView draws)."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    image = QImage(pixels.data, w, h, w * 4, QImage.Format.Format_RGBA8888)
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


Sample = tuple[float, float]
"""(wall-clock seconds, CPU seconds of this process) of one measured operation."""


def median_ms(times: list[Sample], cpu: bool = False) -> float:
    return statistics.median(t[1] if cpu else t[0] for t in times) * 1e3


def pct_ms(times: list[Sample], q: float) -> float:
    s = sorted(t[0] for t in times)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e3


def view_update(comp: Compositor) -> set[tuple[int, int]]:
    """What the window does after an edit: re-render each dirty tile and rebuild its image;
    returns the tiles' keys."""
    keys: set[tuple[int, int]] = set()
    for rect in comp.take_dirty():
        keys.update(rect.tiles(TILE))
    for key in keys:
        to_qimage(comp.tile(*key))
    return keys


# -- (a) stroke segments ------------------------------------------------------------------------
def stroke_segments(doc: Document, comp: Compositor, layer: PixelLayer, size: int, step: float, n: int) -> list[Sample]:
    """Seconds per pen event (``step`` px apart) including the view update."""
    doc.set_active(layer)
    comp.render()  # warm: every tile cached once, as a window showing the whole canvas has
    comp.take_dirty()
    brush = Brush(size=size, hardness=0.6, color=(200, 40, 40), size_pressure=None)
    times: list[Sample] = []
    x0, y0 = 700.0, 900.0
    stroke = Stroke(doc, layer, brush)
    stroke.add_point(x0, y0, 1.0)
    view_update(comp)
    for i in range(1, n + 1):
        # A gentle curve across several tiles.
        x = x0 + step * i
        y = y0 + 400 * np.sin(i * step / 900)
        t0, c0 = time.perf_counter(), time.process_time()
        stroke.add_point(x, float(y), 1.0)
        view_update(comp)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    stroke.end()
    doc.history.clear()
    return times


# -- (b) full recomposite vs QPainter -------------------------------------------------------------
def toggle_recomposite(
    doc: Document, comp: Compositor, repeats: int
) -> tuple[list[Sample], set[tuple[int, int]]]:
    layer = [child for child in doc.root.children][LAYERS // 2]
    comp.render()
    comp.take_dirty()
    times: list[Sample] = []
    tiles: set[tuple[int, int]] = set()
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        doc._raw_set(layer, "visible", not layer.visible)
        tiles = view_update(comp)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    if not layer.visible:
        doc._raw_set(layer, "visible", True)
        view_update(comp)
    return times, tiles


def scratch_composite(doc: Document, repeats: int) -> list[Sample]:
    times: list[Sample] = []
    for _ in range(repeats):
        comp = Compositor(doc)
        t0, c0 = time.perf_counter(), time.process_time()
        for ty in range(doc.height // TILE):
            for tx in range(doc.width // TILE):
                comp.tile(tx, ty)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
        comp.close()
    return times


def qpainter_composite(doc: Document, repeats: int, tiles: set[tuple[int, int]] | None = None) -> list[Sample]:
    """QPainter drawing the 20 full-canvas layer images onto a cleared premultiplied target;
    with ``tiles``, clipped to those tiles (the same pixels the window recomposites)."""
    clip = QRegion()
    for tx, ty in tiles or ():
        clip += QRegion(tx * TILE, ty * TILE, TILE, TILE)
    images: list[tuple[QImage, BlendMode, float]] = []
    for layer in reversed(doc.root.children):
        assert isinstance(layer, PixelLayer)
        images.append((to_qimage(layer.surface.read(doc.rect)), layer.blend, layer.opacity))
        gc.collect()
    target = QImage(doc.width, doc.height, QImage.Format.Format_ARGB32_Premultiplied)
    times: list[Sample] = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        painter = QPainter(target)
        if tiles:
            painter.setClipRegion(clip)
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
            painter.fillRect(target.rect(), 0)
        else:
            target.fill(0)
        for image, mode, opacity in images:
            painter.setCompositionMode(QT_MODES[mode])
            painter.setOpacity(opacity)
            painter.drawImage(0, 0, image)
        painter.end()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    del images
    gc.collect()
    return times


# -- (c) undo memory ---------------------------------------------------------------------------------
def undo_memory(doc: Document, layer: PixelLayer, strokes: int) -> float:
    rng = np.random.default_rng(3)
    doc.history.clear()
    doc.history.configure(max_steps=max(strokes, 1), max_bytes=1 << 40)
    brush = Brush(size=64, hardness=0.6, color=(30, 30, 200))
    for _ in range(strokes):
        x, y = rng.uniform(100, SIDE - 400), rng.uniform(100, SIDE - 400)
        stroke = Stroke(doc, layer, brush)
        for k in range(31):
            stroke.add_point(x + 10 * k, y + 4 * k * rng.uniform(-1, 1), 0.5 + 0.5 * rng.random())
        stroke.end()
    assert doc.history.undo_count == strokes
    return doc.history.nbytes() / 1e6


# -- (d) QPainter dabs ---------------------------------------------------------------------------------
def qpainter_dabs(count: int) -> float:
    """Draw ``count`` dabs with QPainter calls in this process; seconds taken."""
    image = QImage(1024, 1024, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    t0 = time.perf_counter()
    for i in range(count):
        painter.setPen(QPen(QColor(i % 256, 80, 160, 200), 1.5))
        painter.setBrush(QBrush(QColor(40, i % 256, 90, 120)))
        x, y = (i * 37) % 1000, (i * 91) % 1000
        painter.drawEllipse(QRectF(x, y, 24, 24))
        if i % 100 == 0:
            painter.fillRect(QRectF(x, y, 4, 4), QColor(0, 0, 0))
    painter.end()
    return time.perf_counter() - t0


def row(name: str, value: float, unit: str, target: str = "", verdict: str = "") -> tuple[str, ...]:
    return (name, f"{value:10.2f} {unit}", target, verdict)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    reps = 3 if args.quick else 7
    seg_n = 25 if args.quick else 80

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    figures: dict[str, float] = {}
    t0 = time.perf_counter()
    doc = build_document()
    figures["setup_s"] = time.perf_counter() - t0
    figures["mean_layer_coverage"] = coverage(doc)
    layers = [child for child in reversed(doc.root.children)]  # bottom first
    assert all(isinstance(layer, PixelLayer) for layer in layers)
    middle, top = layers[LAYERS // 2], layers[-1]
    comp = Compositor(doc)

    measure: list[tuple[str, Callable[[], list[float]]]] = [
        ("segment_64px_middle", lambda: stroke_segments(doc, comp, middle, 64, 10.0, seg_n)),
        ("segment_256px_middle", lambda: stroke_segments(doc, comp, middle, 256, 30.0, seg_n)),
        ("segment_64px_top", lambda: stroke_segments(doc, comp, top, 64, 10.0, seg_n)),
        ("segment_256px_top", lambda: stroke_segments(doc, comp, top, 256, 30.0, seg_n)),
    ]
    for name, fn in measure:
        times = fn()
        figures[f"{name}_median_ms"] = median_ms(times)
        figures[f"{name}_cpu_median_ms"] = median_ms(times, cpu=True)
        figures[f"{name}_p90_ms"] = pct_ms(times, 0.9)
    # The cached tiles the strokes left must equal a from-scratch flatten.
    painted = Rect(400, 300, 2600, 1400)
    diff = np.abs(comp.render(painted).astype(int) - flatten(doc, painted).astype(int))
    figures["compositor_vs_flatten_max_diff"] = float(diff.max())

    toggle, tiles = toggle_recomposite(doc, comp, reps)
    figures["toggle_recomposite_ms"] = median_ms(toggle)
    figures["toggle_recomposite_cpu_ms"] = median_ms(toggle, cpu=True)
    figures["toggle_dirty_tiles"] = len(tiles)
    comp.close()
    gc.collect()
    scratch = scratch_composite(doc, max(2, reps // 2))
    figures["scratch_composite_ms"] = median_ms(scratch)
    figures["scratch_composite_cpu_ms"] = median_ms(scratch, cpu=True)
    qpainter = qpainter_composite(doc, reps)
    figures["qpainter_composite_ms"] = median_ms(qpainter)
    figures["qpainter_composite_cpu_ms"] = median_ms(qpainter, cpu=True)
    same_tiles = qpainter_composite(doc, reps, tiles)
    figures["qpainter_same_tiles_ms"] = median_ms(same_tiles)
    figures["qpainter_same_tiles_cpu_ms"] = median_ms(same_tiles, cpu=True)
    # Equal work: the same pixels composited on both sides.
    figures["scratch_vs_qpainter_ratio"] = figures["scratch_composite_ms"] / figures["qpainter_composite_ms"]
    figures["toggle_vs_qpainter_same_tiles_ratio"] = figures["toggle_recomposite_ms"] / figures["qpainter_same_tiles_ms"]
    figures["toggle_vs_qpainter_same_tiles_cpu_ratio"] = (
        figures["toggle_recomposite_cpu_ms"] / figures["qpainter_same_tiles_cpu_ms"]
    )
    # Not equal work: the window's dirty tiles against QPainter's whole canvas.
    figures["toggle_dirty_tiles_vs_qpainter_whole_ratio"] = (
        figures["toggle_recomposite_ms"] / figures["qpainter_composite_ms"]
    )
    figures["toggle_dirty_tiles_vs_qpainter_whole_cpu_ratio"] = (
        figures["toggle_recomposite_cpu_ms"] / figures["qpainter_composite_cpu_ms"]
    )

    figures["undo_mb_100_strokes_64px"] = undo_memory(doc, middle, 100)
    figures["qpainter_20000_dabs_s"] = qpainter_dabs(20000)
    del app

    targets = {
        "segment_64px_middle_median_ms": (8.0, "<= 8 ms"),
        "segment_64px_top_median_ms": (8.0, "<= 8 ms"),
        "segment_256px_middle_median_ms": (16.0, "<= 16 ms"),
        "segment_256px_top_median_ms": (16.0, "<= 16 ms"),
        "scratch_vs_qpainter_ratio": (1.5, "<= 1.5x"),
        "toggle_vs_qpainter_same_tiles_ratio": (1.5, "<= 1.5x"),
        "toggle_dirty_tiles_vs_qpainter_whole_ratio": (1.5, "<= 1.5x"),
        "undo_mb_100_strokes_64px": (50.0, "<= 50 MB"),
    }
    print(f"{'figure':44} {'value':>12}  {'target':10} verdict")
    for name, value in figures.items():
        target, verdict = "", ""
        if name in targets:
            limit, target = targets[name]
            verdict = "ok" if value <= limit else f"MISSED by {value / limit:.2f}x"
        print(f"{name:44} {value:12.2f}  {target:10} {verdict}")
    print("20,000 QPainter dabs: no crash")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
