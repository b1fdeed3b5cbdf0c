"""Window figures: stroke-to-screen latency and window start to first paint.

Stroke-to-screen: a 4096² document with 20 layers (an opaque background, 18 layers of
semi-transparent content over large areas with a few multiply/screen layers, the active
layer in the middle of the stack). A 64 px brush stroke is drawn with synthetic mouse
events; each sample is the time from handing one pointer event (an ~8 px move) to the
canvas widget until a synchronous repaint has returned, i.e. the dab painted, the dirty
tiles recomposited, converted and drawn. The repaint covers the region the view scheduled
with ``update()`` (what the event loop repaints: ``CanvasView.repaint_pending``); the
whole-widget ``repaint()`` figure is printed too, as a worst case. Medians and 95th
percentiles, at 100 % zoom and at "fit" (the whole document on screen, drawn from
mipmapped tiles).

Start to first paint: a fresh ``python`` process that imports the app, builds the full
window (generation docks included) and shows it; the time from process launch until the
canvas has painted the document for the first time, and whether torch was imported.

Prints a table; ``--json PATH`` writes the figures.

    python benchmarks/bench_desktop.py [--json out.json] [--events 150] [--starts 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SFUMATO_CONFIG_DIR", tempfile.mkdtemp(prefix="sfumato-bench-"))
os.environ.setdefault("SFUMATO_NO_SYSTEM_MODEL_DIRS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

SIDE = 4096
LAYERS = 20
BRUSH = 64


def big_document():  # noqa: ANN201 - Document
    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.layers import PixelLayer
    from sfumato.canvas.model.tiles import TiledSurface
    from sfumato.canvas.pixels.blend import BlendMode

    rng = np.random.default_rng(7)
    doc = Document(SIDE, SIDE)
    background = np.empty((SIDE, SIDE, 4), np.uint8)
    background[...] = (235, 228, 215, 255)
    layers = [PixelLayer("Background", TiledSurface.from_array(background))]
    del background
    for i in range(LAYERS - 2):
        w, h = int(rng.integers(1500, 3000)), int(rng.integers(1500, 3000))
        x, y = int(rng.integers(0, SIDE - w)), int(rng.integers(0, SIDE - h))
        block = np.empty((h, w, 4), np.uint8)
        block[..., :3] = rng.integers(0, 255, 3, dtype=np.uint8)
        block[..., 3] = 160
        mode = (BlendMode.MULTIPLY, BlendMode.SCREEN)[i % 2] if i % 6 == 5 else BlendMode.NORMAL
        layers.append(PixelLayer(f"Layer {i + 1}", TiledSurface.from_array(block, x, y), blend=mode))
    active = PixelLayer("Active")
    layers.insert(LAYERS // 2, active)
    for layer in reversed(layers):  # root children are listed top first
        doc.root.insert(0, layer)
    doc.active = active
    assert len(list(doc.layers())) == LAYERS
    return doc


def stroke_to_screen(events: int, fit: bool, full: bool = False) -> dict[str, float]:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication
    from sfumato.desktop.app import create_application
    from sfumato.desktop.main_window import MainWindow

    app = create_application([])
    window = MainWindow()
    window.resize(1600, 1000)
    window.set_document(big_document())
    window.show()
    app.processEvents()
    view = window.view
    if fit:
        view.fit()
    else:
        view.actual_pixels()
    window.tool_settings.update(size=BRUSH, hardness=0.8, opacity=1.0, flow=1.0)
    view.render_all()  # fill the tile cache for the visible area
    app.processEvents()

    def send(kind: QEvent.Type, pos: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
        QApplication.sendEvent(view, QMouseEvent(
            kind, pos, view.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier))

    step_doc = 8.0  # document pixels per event, a pen at ~1000 px/s and 125 Hz
    zoom = view.viewport.zoom
    cx, cy = view.width() / 2, view.height() / 2
    x0 = cx - (events * step_doc * zoom) / 2
    send(QEvent.Type.MouseButtonPress, QPointF(x0, cy), Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    view.repaint()
    times: list[float] = []
    for i in range(1, events + 1):
        pos = QPointF(x0 + i * step_doc * zoom, cy + 40 * zoom * np.sin(i / 9.0))
        t0 = time.perf_counter()
        send(QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
        if full:
            view.repaint()
        else:
            view.repaint_pending()
        times.append(time.perf_counter() - t0)
    send(QEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    doc = window.document
    assert doc.history.undo_labels() == ["Brush Stroke"], "the stroke was not painted"
    doc.history.mark_clean()
    window.close()
    window.deleteLater()
    app.processEvents()
    times.sort()
    return {
        "median_ms": statistics.median(times) * 1e3,
        "p95_ms": times[int(0.95 * (len(times) - 1))] * 1e3,
        "zoom": zoom,
    }


_START_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from PySide6.QtCore import QTimer
    from sfumato.desktop.app import create_application, create_window
    app = create_application([])
    window = create_window()
    def painted():
        print("PAINTED", repr(time.time()), "torch" in sys.modules, flush=True)
        app.quit()
    window.first_paint.connect(painted)
    window.resize(1440, 900)
    window.show()
    QTimer.singleShot(30000, lambda: app.exit(3))
    code = app.exec()
    window.close()
    sys.exit(code)
    """
)


def start_to_first_paint(runs: int) -> dict[str, float | bool]:
    figures: list[float] = []
    torch_loaded = False
    for _ in range(runs):
        env = dict(os.environ, SFUMATO_CONFIG_DIR=tempfile.mkdtemp(prefix="sfumato-bench-start-"))
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", _START_SCRIPT], env=env, capture_output=True,
                             text=True, timeout=120)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PAINTED")), None)
        if line is None:
            raise RuntimeError(f"the window did not paint:\n{out.stdout}\n{out.stderr}")
        _, stamp, torch_flag = line.split()
        figures.append(float(stamp) - t0)
        torch_loaded = torch_loaded or torch_flag == "True"
    return {"median_s": statistics.median(figures), "best_s": min(figures), "torch_imported": torch_loaded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=str, default=None, help="write the figures to this file")
    parser.add_argument("--events", type=int, default=150, help="pointer events per stroke")
    parser.add_argument("--starts", type=int, default=3, help="window starts to time")
    args = parser.parse_args(argv)

    results: dict[str, object] = {
        "document": f"{SIDE}x{SIDE}, {LAYERS} layers",
        "brush_px": BRUSH,
        "stroke_to_screen_100pct": stroke_to_screen(args.events, fit=False),
        "stroke_to_screen_fit": stroke_to_screen(args.events, fit=True),
        "full_repaint_100pct": stroke_to_screen(args.events, fit=False, full=True),
        "full_repaint_fit": stroke_to_screen(args.events, fit=True, full=True),
        "start_to_first_paint": start_to_first_paint(args.starts),
    }
    s100 = results["stroke_to_screen_100pct"]
    sfit = results["stroke_to_screen_fit"]
    start = results["start_to_first_paint"]
    print(f"{'figure':44} {'value':>12}   target")
    print(f"{'stroke-to-screen, 100 % zoom, median':44} {s100['median_ms']:9.2f} ms   <= 16 ms")  # type: ignore[index]
    print(f"{'stroke-to-screen, 100 % zoom, p95':44} {s100['p95_ms']:9.2f} ms")  # type: ignore[index]
    print(f"{'stroke-to-screen, fit zoom, median':44} {sfit['median_ms']:9.2f} ms   <= 16 ms")  # type: ignore[index]
    print(f"{'stroke-to-screen, fit zoom, p95':44} {sfit['p95_ms']:9.2f} ms")  # type: ignore[index]
    for key, label in (("full_repaint_100pct", "100 % zoom"), ("full_repaint_fit", "fit zoom")):
        fig = results[key]
        print(f"{'event + whole-widget repaint(), ' + label + ', median':44} {fig['median_ms']:9.2f} ms")  # type: ignore[index]
    print(f"{'window start to first paint, median':44} {start['median_s']:10.2f} s    <= 2 s")  # type: ignore[index]
    print(f"{'torch imported at start':44} {start['torch_imported']!s:>12}   False")  # type: ignore[index]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
