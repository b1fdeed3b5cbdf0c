"""Expand (outpainting): a picture on a canvas partly bare is an inpaint of the bare part.

The rule (planner/outpaint.py): part of the canvas lies outside every visible picture
layer's bounds, and one of those layers is a solid picture (opaque over its bounds).
"""

from __future__ import annotations

import numpy as np
import pytest
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.edits.canvas_size import Anchor, resize_canvas_to
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import Role
from sfumato.inference.request import FillMode
from sfumato.planner.families import FamilyInfo
from sfumato.planner.outpaint import bare_bounds, expands
from sfumato.planner.placement import place_result
from sfumato.planner.plan import Mode, detect_mode, plan
from sfumato.planner.recipe import GenerationSettings

TINY = FamilyInfo.for_native("sd15", 64)


def settings(**kw: object) -> GenerationSettings:
    base: dict[str, object] = {"prompt": "a garden", "model": "tiny", "seed": 3, "steps": 4}
    base.update(kw)
    return GenerationSettings(**base)  # type: ignore[arg-type]


def grown() -> tuple[object, np.ndarray]:
    """A 64² picture whose canvas was grown 32 px to the right (Image → Canvas Size)."""
    picture = gradient(64, 64)
    doc = document(64, 64, layer("background", picture))
    resize_canvas_to(doc, 96, 64, Anchor.LEFT)
    return doc, picture


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_a_grown_canvas_expands_into_the_new_border_whatever_the_strength(strength: float) -> None:
    doc, picture = grown()
    assert detect_mode(doc, strength) is Mode.EXPAND and Mode.EXPAND.label == "Expand"
    assert bare_bounds(doc) == Rect(64, 0, 32, 64)
    p = plan(doc, settings(strength=strength), family=TINY)
    assert p.mode is Mode.EXPAND and p.request.mode is Mode.INPAINT
    area = p.area  # the border with its context
    assert area.contains(Rect(64, 0, 32, 64)) and area.x < 64 - 8, area
    assert p.request.init is not None and p.request.init.strength == 1.0  # the border has nothing to keep
    assert (p.size.width, p.size.height) == (area.w, area.h)  # no resampling at this size
    assert np.array_equal(p.request.init.image[:, : 64 - area.x], picture[:, area.x :, :3])
    assert p.request.inpaint is not None and p.request.inpaint.fill is FillMode.TELEA
    assert p.request.summary()["inpaint"] == {"fill": "telea"}
    assert any("telea" in note for note in p.notes)
    # the picture is pasted over by nothing, the border by everything
    assert p.paste_mask is not None
    edge = 64 - area.x  # the picture's right edge in the area
    assert not p.paste_mask[:, :edge].any() and (p.paste_mask[:, edge + 8 :] == 1.0).all()
    # the model repaints a margin inside the picture, for the join (the paste keeps it exact)
    assert p.request.inpaint.mask[:, edge - 8 : edge].max() > 0.3


def test_the_picture_stays_byte_identical_and_the_border_is_filled() -> None:
    doc, picture = grown()
    p = plan(doc, settings(), family=TINY)
    result = np.full((p.size.height, p.size.width, 3), (10, 200, 30), np.uint8)
    place_result(doc, p, result)
    from sfumato.canvas.render.composite import flatten

    out = flatten(doc)
    assert np.array_equal(out[:, :64], picture)
    assert (out[..., 3] == 255).all()  # no transparent pixel is left
    assert (out[:, 72:, :3] == (10, 200, 30)).all()


def test_the_chosen_infill_is_kept() -> None:
    doc, _ = grown()
    p = plan(doc, settings(fill=FillMode.EDGE), family=TINY)
    assert p.request.inpaint is not None and p.request.inpaint.fill is FillMode.EDGE


def test_a_picture_pasted_on_an_empty_canvas_expands_around_it() -> None:
    doc = document(128, 96, layer("photo", gradient(60, 70), x=30, y=20))
    assert expands(doc) and detect_mode(doc, 0.5) is Mode.EXPAND
    assert bare_bounds(doc) == doc.rect
    p = plan(doc, settings(), family=TINY)
    assert p.paste_mask is not None
    area = p.area
    inside = p.paste_mask[20 - area.y : 80 - area.y, 30 - area.x : 100 - area.x]
    assert not inside.any() and (p.paste_mask[: 20 - area.y] == 1).all()


def test_a_sketch_on_transparency_is_refined_not_expanded() -> None:
    sketch = rgba(64, 64, (0, 0, 0), alpha=0)
    sketch[10:50, 30:33] = (0, 0, 0, 255)  # two strokes, a cross
    sketch[28:31, 12:52] = (0, 0, 0, 255)
    doc = document(64, 64, layer("sketch", sketch))
    assert not expands(doc)
    assert detect_mode(doc, 0.5) is Mode.IMG2IMG and detect_mode(doc, 1.0) is Mode.TXT2IMG


def test_a_cut_out_or_a_small_block_on_transparency_is_refined_not_expanded() -> None:
    yy, xx = np.mgrid[0:40, 0:40]
    cut = rgba(40, 40, (200, 0, 0), alpha=0)
    cut[(yy - 20) ** 2 + (xx - 20) ** 2 < 18**2] = (200, 0, 0, 255)  # a disc: transparent corners
    doc = document(64, 64, layer("cut-out", cut, x=10, y=10))
    assert not expands(doc)
    doc = document(64, 64, layer("block", rgba(20, 20, (200, 0, 0)), x=10, y=10))  # solid, but 10 % of the canvas
    assert not expands(doc)


@pytest.mark.parametrize("change", ["hidden", "half opacity", "covered", "mask"])
def test_no_expand_when(change: str) -> None:
    doc, _ = grown()
    background = next(iter(doc.pixel_layers()))
    if change == "hidden":
        background.visible = False
        assert not expands(doc)
    elif change == "half opacity":
        background.opacity = 0.5
        assert not expands(doc)
    elif change == "covered":  # another layer reaches the border: nothing is bare by the bounds
        doc.root.insert(0, layer("strip", rgba(64, 32, (0, 0, 255), alpha=40), x=64))
        assert not expands(doc)
    else:  # a mask is the user's own choice of what to regenerate
        mask = rgba(64, 96, (255, 255, 255), alpha=0)
        mask[20:30, 20:30, 3] = 255
        doc.root.insert(0, layer("mask", mask, role=Role.INPAINT_MASK))
        assert detect_mode(doc, 0.5) is Mode.INPAINT


def test_a_picture_over_several_tiles_is_solid_until_one_pixel_is_bare() -> None:
    """The solid-picture test reads 256-px tiles one by one: a 600 × 400 picture spans six
    of them, and one transparent pixel in the last makes it no longer solid."""
    picture = gradient(400, 600)
    doc = document(600, 400, layer("background", picture, x=0, y=0))
    resize_canvas_to(doc, 700, 400, Anchor.LEFT)
    assert expands(doc)
    holed = picture.copy()
    holed[390, 590, 3] = 0  # in tile (2, 1)
    doc = document(600, 400, layer("background", holed))
    resize_canvas_to(doc, 700, 400, Anchor.LEFT)
    assert not expands(doc)
