"""Placing results: a generated layer over exactly the area, transparent outside the mask."""

from __future__ import annotations

import numpy as np
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.model.layers import GroupLayer, Role
from sfumato.canvas.render.composite import flatten
from sfumato.planner.families import FamilyInfo
from sfumato.planner.placement import insertion_index, insertion_point, place_result, result_layer
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings

TINY = FamilyInfo.for_native("sd15", 64)
S = GenerationSettings(prompt="a red door", model="tiny", seed=7, steps=2)


def inpaint_doc():
    mask_pixels = rgba(20, 24, alpha=0)
    mask_pixels[4:16, 4:20, 3] = 255
    mask = layer("mask", mask_pixels, role=Role.INPAINT_MASK, x=100, y=90)
    return document(200, 160, mask, layer("paint", gradient(160, 200)))


def test_inpaint_result_leaves_every_pixel_outside_the_mask_untouched() -> None:
    doc = inpaint_doc()
    before = flatten(doc)
    p = plan(doc, S, family=TINY)
    result = np.full((p.size.height, p.size.width, 3), (250, 0, 0), np.uint8)
    new = place_result(doc, p, result)
    after = flatten(doc)
    inside = np.zeros((160, 200), bool)
    inside[94:106, 104:120] = True
    assert np.array_equal(after[~inside], before[~inside])
    assert (after[100, 110, :3] == (250, 0, 0)).all()  # the core of the mask is the result
    assert new.role is Role.GENERATED
    assert (new.x, new.y) == (p.area.x, p.area.y)
    assert p.area.contains(new.document_bounds())


def test_txt2img_result_is_opaque_over_exactly_the_area() -> None:
    doc = document(80, 72, layer("paint", gradient(72, 80)))
    p = plan(doc, S, family=TINY)
    result = np.zeros((p.size.height, p.size.width, 3), np.uint8)
    new = result_layer(p, result)
    assert new.document_bounds() == p.area == doc.rect
    pixels = new.surface.read(new.surface.bounds())
    assert (pixels[..., 3] == 255).all() and pixels.shape[:2] == (72, 80)


def test_generation_parameters_are_carried() -> None:
    p = plan(inpaint_doc(), S.replace(batch=2), family=TINY)
    result = np.zeros((p.size.height, p.size.width, 3), np.uint8)
    second = result_layer(p, result, batch_index=1)
    assert second.generation is not None
    assert second.generation["prompt"] == "a red door"
    assert second.generation["seed"] == 8 and second.generation["mode"] == "inpaint"
    assert second.generation["area"] == [p.area.x, p.area.y, p.area.w, p.area.h]
    assert "a red door" in second.name


def test_the_record_takes_seed_and_run_facts_from_the_engine() -> None:
    p = plan(inpaint_doc(), S.replace(batch=2), family=TINY)
    result = np.zeros((p.size.height, p.size.width, 3), np.uint8)
    metadata = {"seeds": [40, 41], "family": "sd15", "steps_run": 2, "seconds": 0.5,
                "device": "cpu", "schedule": 2}  # device, schedule: not part of the record
    second = result_layer(p, result, metadata=metadata, batch_index=1)
    assert second.generation == {
        **p.request.summary(), "area": [p.area.x, p.area.y, p.area.w, p.area.h], "seed": 41,
        "batch_index": 1, "family": "sd15", "steps_run": 2, "seconds": 0.5,
    }


def test_placement_is_one_undo_step_and_sits_under_the_overlays() -> None:
    doc = inpaint_doc()
    p = plan(doc, S, family=TINY)
    result = np.zeros((p.size.height, p.size.width, 3), np.uint8)
    assert insertion_index(doc) == 1  # below the mask layer, above the paint
    doc.set_active(doc.find("mask"))  # the artist was painting the mask
    new = place_result(doc, p, result)
    assert doc.root.children[1] is new
    assert doc.active is doc.find("mask"), "the artist's active layer stays active"
    doc.history.undo()
    assert new not in doc.root.children
    doc.history.redo()
    assert doc.root.children[1] is new
    assert doc.history.undo_label == "Inpaint"


def test_result_at_area_size_is_accepted() -> None:
    doc = document(80, 72)
    p = plan(doc, S, family=TINY)
    new = result_layer(p, np.zeros((72, 80, 3), np.uint8))
    assert new.document_bounds() == p.area


def test_result_goes_directly_above_the_active_paint_layer_and_leaves_it_active() -> None:
    """Paint layers above and below, the active one inside a group: the result sits right
    above the active layer, in its group, and the next stroke still goes to that layer."""
    sketch = layer("sketch", rgba(40, 40, alpha=255))
    group = GroupLayer("figure")
    group.append(layer("ink", rgba(40, 40, alpha=0)))
    group.append(sketch)
    doc = document(40, 40, layer("top paint", rgba(40, 40, alpha=0)))
    doc.root.append(group)
    doc.root.append(layer("background", gradient(40, 40)))
    doc.set_active(sketch)
    assert insertion_point(doc) == (group, 1)
    p = plan(doc, S, family=TINY)
    new = place_result(doc, p, np.zeros((p.size.height, p.size.width, 3), np.uint8))
    assert group.children == [group.children[0], new, sketch]
    assert doc.active is sketch
    doc.history.undo()
    assert new not in group.children and doc.active is sketch


def test_without_an_active_image_layer_the_result_goes_above_the_topmost_one() -> None:
    doc = inpaint_doc()
    doc.set_active(None)
    assert insertion_point(doc) == (doc.root, 1)
