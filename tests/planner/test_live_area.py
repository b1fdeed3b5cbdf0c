"""The live area: the whole canvas when it fits, else a window that follows the brush."""

from __future__ import annotations

import numpy as np
import pytest
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.planner.errors import PlanError
from sfumato.planner.families import FamilyInfo
from sfumato.planner.live_area import FEATHER, MIN_WINDOW, live_area, window_blend
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings
from sfumato.vocabulary.kinds import Mode

SD15 = FamilyInfo.for_native("sd15", 512)
SDXL = FamilyInfo.for_native("sdxl", 1024)
TINY = FamilyInfo.for_native("sd15", 64)


@pytest.mark.parametrize("family, size", [(SD15, (512, 512)), (SD15, (560, 560)), (SDXL, (768, 1344)), (TINY, (512, 512))])
def test_a_canvas_within_the_budget_is_rendered_whole(family: FamilyInfo, size: tuple[int, int]) -> None:
    canvas = Rect(0, 0, *size)
    assert live_area(canvas, family, Rect(10, 10, 5, 5)) == canvas
    assert window_blend(canvas, canvas) is None


def test_on_a_large_canvas_a_native_window_follows_the_brush_inside_the_canvas() -> None:
    canvas = Rect(0, 0, 4096, 3000)
    assert live_area(canvas, SD15, Rect(1000, 1000, 20, 20)) == Rect(752, 752, 512, 512)
    assert live_area(canvas, SDXL, Rect(1000, 1000, 20, 20)) == Rect(496, 496, 1024, 1024)
    # Slid inside at the borders; always on the 8-pixel grid.
    assert live_area(canvas, SD15, Rect(4090, 2995, 6, 5)) == Rect(3584, 2488, 512, 512)
    assert live_area(canvas, SD15, Rect(0, 0, 3, 3)) == Rect(0, 0, 512, 512)
    # No newest change: the last window stays; none either: the centre.
    last = Rect(800, 800, 512, 512)
    assert live_area(canvas, SD15, None, last) == last
    assert live_area(canvas, SD15, None) == Rect(1792, 1240, 512, 512)
    # A tiny model still gets a useful window in document pixels.
    assert live_area(canvas, TINY, Rect(1000, 1000, 20, 20)).w == MIN_WINDOW


def test_the_window_blends_in_only_at_edges_inside_the_canvas() -> None:
    canvas = Rect(0, 0, 2048, 2048)
    corner = Rect(0, 0, 512, 512)
    weights = window_blend(corner, canvas)
    assert weights is not None and weights.shape == (512, 512) and weights.dtype == np.float32
    assert weights[0, 0] == 1.0 and weights[256, 0] == 1.0  # on the canvas border: no ramp
    assert weights[256, -1] < 0.05 and weights[-1, 256] < 0.05  # inner edges fade out
    assert weights[256, 512 - FEATHER - 1] == 1.0
    row = weights[256, 512 - FEATHER:]
    assert np.all(np.diff(row) < 0)  # a monotone ramp


def _painted(width: int, height: int) -> Document:
    doc = Document(width, height)
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[..., 2] = 200
    pixels[..., 3] = 255
    doc.root.append(PixelLayer("paint", TiledSurface.from_array(pixels)))
    return doc


def test_plan_renders_the_given_area_for_img2img_and_refuses_one_outside() -> None:
    doc = _painted(2048, 1024)
    settings = GenerationSettings(model="m.safetensors", model_family="sd15", strength=0.6)
    window = live_area(doc.rect, SD15, Rect(1500, 300, 10, 10))
    planned = plan(doc, settings, family=SD15, area=window)
    assert planned.mode is Mode.IMG2IMG and planned.area == window
    assert (planned.size.width, planned.size.height) == (512, 512)
    with pytest.raises(PlanError, match="not inside"):
        plan(doc, settings, family=SD15, area=Rect(1800, 0, 512, 512))
