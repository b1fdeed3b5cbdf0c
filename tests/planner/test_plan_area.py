"""The generation area: mask bounds plus context padding, square-ish, native, clipped."""

from __future__ import annotations

from sfumato.canvas.model.geometry import Rect
from sfumato.planner.area import MAX_ASPECT, context_padding, plan_area


def test_nothing_masked_is_the_whole_canvas() -> None:
    canvas = Rect(0, 0, 1000, 700)
    assert plan_area(canvas, None, 512) == canvas
    assert plan_area(canvas, Rect(0, 0, 0, 0), 512) == canvas


def test_padding_is_the_larger_of_canvas_and_mask_terms() -> None:
    canvas = Rect(0, 0, 3200, 1600)
    assert context_padding(canvas, Rect(0, 0, 40, 40)) == 200  # 3200 / 16
    assert context_padding(canvas, Rect(0, 0, 800, 600)) == 350  # mean side 700 / 2


def test_small_mask_gets_a_native_sized_centred_area() -> None:
    canvas = Rect(0, 0, 2000, 2000)
    mask = Rect(1000, 1000, 40, 40)
    area = plan_area(canvas, mask, 512)
    assert (area.w, area.h) == (512, 512)
    assert area.contains(mask)
    # centred on the mask (within rounding)
    assert abs((area.x + area.w / 2) - (mask.x + mask.w / 2)) <= 4
    assert abs((area.y + area.h / 2) - (mask.y + mask.h / 2)) <= 4


def test_large_mask_gets_mean_side_padding() -> None:
    canvas = Rect(0, 0, 4000, 4000)
    mask = Rect(1500, 1500, 800, 800)
    area = plan_area(canvas, mask, 512)
    pad = context_padding(canvas, mask)  # 400
    assert area.contains(mask.grow(pad))
    assert area.w < 800 + 2 * pad + 8


def test_area_near_an_edge_slides_inside_and_keeps_its_size() -> None:
    canvas = Rect(0, 0, 1500, 1500)
    mask = Rect(0, 1450, 50, 50)  # bottom-left corner
    area = plan_area(canvas, mask, 512)
    assert canvas.contains(area) and area.contains(mask)
    assert (area.w, area.h) == (512, 512)
    assert area.x == 0 and area.y1 == 1500


def test_thin_mask_becomes_square_ish() -> None:
    canvas = Rect(0, 0, 4000, 4000)
    mask = Rect(500, 2000, 2000, 20)
    area = plan_area(canvas, mask, 512)
    assert area.contains(mask)
    assert max(area.w, area.h) / min(area.w, area.h) <= MAX_ASPECT + 0.02


def test_area_is_clipped_to_a_small_canvas() -> None:
    canvas = Rect(0, 0, 300, 200)
    area = plan_area(canvas, Rect(100, 50, 30, 30), 512)
    assert area == canvas


def test_sides_are_multiples_of_8_when_the_canvas_allows() -> None:
    canvas = Rect(0, 0, 5000, 5000)
    area = plan_area(canvas, Rect(1001, 1003, 901, 677), 512)
    assert area.w % 8 == 0 and area.h % 8 == 0
