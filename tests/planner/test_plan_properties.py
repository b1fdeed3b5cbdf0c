"""Property tests: for any canvas and mask, the area contains the mask, lies inside the
canvas, and the generation size is legal for the family."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from plandocs import document, layer, rgba
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import Role
from sfumato.planner.area import plan_area
from sfumato.planner.families import FAMILIES, FamilyInfo
from sfumato.planner.mask import paste_mask
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.sizing import generation_size

FAMILY_LIST = [*FAMILIES.values(), FamilyInfo.for_native("builtin", 128), FamilyInfo.for_native("tiny", 64)]


@st.composite
def canvas_and_mask(draw: st.DrawFn) -> tuple[Rect, Rect]:
    w = draw(st.integers(1, 6000))
    h = draw(st.integers(1, 6000))
    x0 = draw(st.integers(0, w - 1))
    y0 = draw(st.integers(0, h - 1))
    x1 = draw(st.integers(x0 + 1, w))
    y1 = draw(st.integers(y0 + 1, h))
    return Rect(0, 0, w, h), Rect.from_bounds(x0, y0, x1, y1)


@given(canvas_and_mask(), st.sampled_from(FAMILY_LIST))
@settings(max_examples=300, deadline=None)
def test_area_contains_the_mask_and_lies_inside_the_canvas(cm: tuple[Rect, Rect], family: FamilyInfo) -> None:
    canvas, mask = cm
    area = plan_area(canvas, mask, family.native)
    assert canvas.contains(area)
    assert area.contains(mask)
    assert area.w >= min(family.native, canvas.w) and area.h >= min(family.native, canvas.h)


@given(st.integers(1, 8192), st.integers(1, 8192), st.sampled_from(list(FAMILIES.values())))
@settings(max_examples=300, deadline=None)
def test_generation_size_is_legal(width: int, height: int, family: FamilyInfo) -> None:
    size = generation_size(width, height, family)
    assert size.width % 8 == 0 and size.height % 8 == 0
    assert family.min_side <= size.width <= family.max_side
    assert family.min_side <= size.height <= family.max_side


@given(
    st.integers(8, 160), st.integers(8, 160),
    st.integers(0, 150), st.integers(0, 150), st.integers(1, 40), st.integers(1, 40),
)
@settings(max_examples=40, deadline=None)
def test_planned_inpaint_is_consistent(w: int, h: int, mx: int, my: int, mw: int, mh: int) -> None:
    mx, my = min(mx, w - 1), min(my, h - 1)
    mask_layer = layer("mask", rgba(mh, mw), role=Role.INPAINT_MASK, x=mx, y=my)
    doc = document(w, h, mask_layer)
    tiny = FamilyInfo.for_native("sd15", 64)
    p = plan(doc, GenerationSettings(prompt="x", model="m"), family=tiny)
    bounds = mask_layer.document_bounds().intersect(doc.rect)
    assert doc.rect.contains(p.area) and p.area.contains(bounds)
    assert (p.request.width, p.request.height) == (p.size.width, p.size.height)
    assert p.size.width % 8 == 0 and tiny.min_side <= p.size.width <= tiny.max_side
    assert p.request.inpaint is not None and p.paste_mask is not None
    # nothing outside the mask is ever pasted
    inside = np.zeros((p.area.h, p.area.w), bool)
    inside[bounds.slices(p.area.x, p.area.y)] = True
    assert (p.paste_mask[~inside] == 0).all()
    assert p.paste_mask.max() > 0


@given(st.integers(0, 3), st.integers(0, 3))
@settings(max_examples=20, deadline=None)
def test_paste_mask_never_exceeds_the_mask(a: int, b: int) -> None:
    m = np.zeros((40, 40), np.float32)
    m[5 + a : 30 - b, 8 + b : 33 - a] = 1.0
    assert (paste_mask(m) <= m).all()
