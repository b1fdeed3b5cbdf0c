"""Open the window on a small demo document and save a screenshot (``docs/screenshot.png``).

Runs headless (``QT_QPA_PLATFORM=offscreen``) unless a display is available (e.g. under
``xvfb-run``). The demo document is a painted landscape with a region layer (prompt
"a red barn"), a control sketch and an inpaint mask, all painted with the real brush
engine, so the picture shows what the program actually draws.

    python scripts/screenshot.py [--out docs/screenshot.png] [--size 1440x900]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("screenshot")

ROOT = Path(__file__).resolve().parent.parent


def demo_document():  # noqa: ANN201 - Document
    """A 1024×768 scene: sky, hills and a sun on paint layers; a region, a control sketch
    and an inpaint mask on their own layers."""
    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.layers import ControlSettings, GroupLayer, PixelLayer, Role
    from sfumato.canvas.model.tiles import TiledSurface
    from sfumato.canvas.paint.brush import Brush, BrushMode, Stroke
    from sfumato.vocabulary.kinds import ControlKind

    w, h = 1024, 768
    doc = Document(w, h)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    # Sky: a vertical gradient from deep blue to a warm horizon.
    t = (yy / h)[..., None]
    top, horizon = np.array([52, 92, 160], np.float32), np.array([246, 196, 150], np.float32)
    sky = np.concatenate([top * (1 - t) + horizon * t, np.full((h, w, 1), 255, np.float32)], 2)
    sky_layer = PixelLayer("Sky", TiledSurface.from_array(sky.astype(np.uint8)))

    # Hills: two sine ridges, the near one darker.
    hills = np.zeros((h, w, 4), np.uint8)
    far = 470 + 40 * np.sin(xx[0] / 160.0 + 1.0)
    near = 560 + 55 * np.sin(xx[0] / 230.0 + 3.0)
    hills[yy >= far[None, :]] = (92, 128, 96, 255)
    hills[yy >= near[None, :]] = (58, 96, 62, 255)
    hills_layer = PixelLayer("Hills", TiledSurface.from_array(hills))

    # The sun, soft-edged.
    d = np.hypot(xx - 760, yy - 250)
    sun = np.zeros((h, w, 4), np.uint8)
    sun[..., :3] = (255, 226, 140)
    sun[..., 3] = np.clip((70 - d) / 6.0, 0, 1) * 255
    sun_layer = PixelLayer("Sun", TiledSurface.from_array(sun), opacity=0.95)

    scenery = GroupLayer("Scenery", [sun_layer, hills_layer, sky_layer])
    strokes = PixelLayer("Brushwork")
    region = PixelLayer("Barn", role=Role.REGION, prompt="a red barn with a white door",
                        negative="modern, metal")
    sketch = PixelLayer("House sketch", role=Role.CONTROL,
                        control=ControlSettings(ControlKind.SCRIBBLE, 0.8, 0.0, 0.7))
    mask = PixelLayer("Inpaint mask", role=Role.INPAINT_MASK)
    for layer in (mask, sketch, region, strokes, scenery):
        doc.root.append(layer)

    # Brushwork: a winding path and a few grass strokes, painted with the brush engine.
    def stroke(layer: PixelLayer, brush: Brush, points: list[tuple[float, float, float]]) -> None:
        s = Stroke(doc, layer, brush)
        for x, y, p in points:
            s.add_point(x, y, p)
        s.end()

    path = [(120 + i * 6, 740 - i * 3.2 + 14 * math.sin(i / 6), 0.4 + 0.6 * i / 80) for i in range(80)]
    stroke(strokes, Brush(size=26, hardness=0.6, color=(196, 170, 120)), path)
    for k in range(14):
        x0 = 60 + k * 70
        stroke(strokes, Brush(size=7, hardness=0.9, color=(40, 78, 44)),
               [(x0 + j * 1.5, 700 - j * 6, 1 - j / 12) for j in range(12)])

    # Region coverage: where the barn should go.
    stroke(region, Brush(size=90, hardness=0.95, mode=BrushMode.MASK),
           [(330 + x, 520 + y, 1.0) for y in range(-40, 41, 20) for x in (-60, 60)])

    # Control sketch: a house outline, dark lines on transparent.
    line = Brush(size=5, hardness=1.0, color=(20, 20, 20), size_pressure=None)
    for seg in (
        [(260, 560), (260, 470), (400, 470), (400, 560)],
        [(245, 478), (330, 410), (415, 478)],
        [(312, 560), (312, 505), (348, 505), (348, 560)],
    ):
        stroke(sketch, line, [(x, y, 1.0) for x, y in seg])

    # Inpaint mask over the sky, where new clouds should appear.
    stroke(mask, Brush(size=120, hardness=0.4, mode=BrushMode.MASK),
           [(140 + i * 20, 170 + 25 * math.sin(i / 2.5), 1.0) for i in range(16)])

    doc.recipe.prompt = "a pastoral landscape at golden hour, oil painting"
    doc.recipe.seed = 1234
    doc.active = region
    doc.history.clear()
    doc.history.mark_clean()
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--size", default="1440x900", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("SFUMATO_CONFIG_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "sfumato-screenshot"))
    os.environ.setdefault("SFUMATO_NO_SYSTEM_MODEL_DIRS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from PySide6.QtCore import QTimer
    from sfumato.desktop.app import create_application, create_window

    app = create_application([])
    width, height = (int(v) for v in args.size.lower().split("x"))
    window = create_window()
    window.set_document(demo_document())
    window.resize(width, height)
    window.show()
    from PySide6.QtCore import Qt

    docks = [window.docks[name] for name in ("generation", "layers") if name in window.docks]
    window.resizeDocks(docks, [340, 330][: len(docks)], Qt.Orientation.Horizontal)
    right = [window.docks[name] for name in ("layers", "brush") if name in window.docks]
    window.resizeDocks(right, [560, 300][: len(right)], Qt.Orientation.Vertical)
    app.processEvents()
    window.view.fit()
    window.tool_settings.update(size=48)
    # Let layouts settle and thumbnails refresh, then grab.
    QTimer.singleShot(600, app.quit)
    app.exec()
    centre = window.view.rect().center()
    window.view._move_outline(centre.toPointF())  # show the brush outline cursor
    window.view.render_all()
    image = window.grab()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(args.out)):
        print(f"could not write {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({image.width()}x{image.height()})")
    window.document.history.mark_clean()
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
