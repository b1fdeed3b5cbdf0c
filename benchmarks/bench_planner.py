"""Planner figures: how long turning a document into a request takes (live mode plans on
every change, so planning must stay far below a generation step).

Document: 4096×4096, an opaque paint layer, an inpaint mask (a 300 px blob), three region
layers and a scribble control, planned for SD 1.x (512 px native). Also: the whole-canvas
img2img plan of the same document without its mask, and placing an inpaint result.
Prints a table; ``--json PATH`` writes the figures (median seconds).

    python benchmarks/bench_planner.py [--json out.json] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.planner.families import FAMILIES, SD15
from sfumato.planner.placement import result_layer
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings
from sfumato.vocabulary.kinds import ControlKind

SIDE = 4096


def _blob(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1.0
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = np.where(inside, 255, 0)
    return out


def _document(with_mask: bool) -> Document:
    doc = Document(SIDE, SIDE)
    paint = np.empty((SIDE, SIDE, 4), np.uint8)
    paint[...] = (120, 130, 140, 255)
    doc.root.append(PixelLayer("paint", TiledSurface.from_array(paint)))
    del paint
    for i, prompt in enumerate(("a cat", "a tree", "a house")):
        doc.root.insert(0, PixelLayer(
            prompt, TiledSurface.from_array(_blob(1400, 1400, (0, 0, 0))), role=Role.REGION,
            prompt=prompt, x=300 + 1100 * i, y=1200,
        ))
    sketch = np.zeros((1200, 1200, 4), np.uint8)
    sketch[590:610, :, 3] = 255
    sketch[:, 590:610, 3] = 255
    doc.root.insert(0, PixelLayer("sketch", TiledSurface.from_array(sketch), role=Role.CONTROL,
                                  control=ControlSettings(ControlKind.SCRIBBLE), x=1500, y=1500))
    if with_mask:
        doc.root.insert(0, PixelLayer("mask", TiledSurface.from_array(_blob(300, 300, (0, 0, 0))),
                                      role=Role.INPAINT_MASK, x=1900, y=1900))
    return doc


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings = GenerationSettings(prompt="a garden", model="sd15.safetensors", seed=1, strength=0.8)
    family = FAMILIES[SD15]
    masked, unmasked = _document(True), _document(False)
    inpaint = plan(masked, settings, family=family)
    image = np.zeros((inpaint.size.height, inpaint.size.width, 3), np.uint8)
    figures = {
        "plan_inpaint_4096_s": _median(lambda: plan(masked, settings, family=family), args.repeat),
        "plan_img2img_4096_s": _median(lambda: plan(unmasked, settings, family=family), args.repeat),
        "place_inpaint_result_s": _median(lambda: result_layer(inpaint, image), args.repeat),
    }
    print(f"inpaint plan: area {inpaint.area.w}x{inpaint.area.h} at {inpaint.area.x},{inpaint.area.y}, "
          f"generated at {inpaint.size}, {len(inpaint.request.regions)} regions, "
          f"{len(inpaint.request.controls)} controls")
    print(f"{'figure':<28}{'median':>12}")
    for name, value in figures.items():
        print(f"{name:<28}{value * 1000:>10.1f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"side": SIDE, **figures}, handle, indent=2)


if __name__ == "__main__":
    main()
