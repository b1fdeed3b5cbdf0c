"""Mode detection and the request a plan builds."""

from __future__ import annotations

import numpy as np
import pytest
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.model.layers import Role
from sfumato.planner.errors import EmptyMaskError, PlanError
from sfumato.planner.families import FamilyInfo
from sfumato.planner.plan import Mode, detect_mode, plan
from sfumato.planner.recipe import GenerationSettings

TINY = FamilyInfo.for_native("sd15", 64)


def settings(**kw: object) -> GenerationSettings:
    base: dict[str, object] = {"prompt": "a garden", "model": "tiny", "seed": 3, "steps": 4}
    base.update(kw)
    return GenerationSettings(**base)  # type: ignore[arg-type]


def test_empty_canvas_is_txt2img_of_the_whole_canvas() -> None:
    doc = document(96, 80)
    p = plan(doc, settings(), family=TINY)
    assert p.mode is Mode.TXT2IMG and p.label == "Generate"
    assert p.area == doc.rect
    assert p.request.init is None and p.request.inpaint is None
    assert (p.request.width, p.request.height) == (p.size.width, p.size.height)
    assert p.request.width % 8 == 0


def test_paint_with_strength_below_one_is_img2img() -> None:
    doc = document(64, 64, layer("paint", gradient(64, 64)))
    p = plan(doc, settings(strength=0.5), family=TINY)
    assert p.mode is Mode.IMG2IMG and p.label == "Refine"
    assert p.request.init is not None and p.request.init.strength == 0.5
    # the init image is the flattened paint (64x64 at a 64 px native: no resampling)
    assert np.array_equal(p.request.init.image, gradient(64, 64)[..., :3])


def test_paint_at_full_strength_is_txt2img() -> None:
    doc = document(64, 64, layer("paint", gradient(64, 64)))
    assert plan(doc, settings(strength=1.0), family=TINY).mode is Mode.TXT2IMG
    assert detect_mode(doc, 1.0) is Mode.TXT2IMG
    assert detect_mode(doc, 0.7) is Mode.IMG2IMG


def test_hidden_paint_does_not_count() -> None:
    doc = document(64, 64, layer("paint", gradient(64, 64), visible=False))
    assert detect_mode(doc, 0.5) is Mode.TXT2IMG


def test_mask_layer_makes_inpaint() -> None:
    mask = layer("mask", rgba(10, 10), role=Role.INPAINT_MASK, x=40, y=40)
    doc = document(128, 128, mask, layer("paint", gradient(128, 128)))
    p = plan(doc, settings(strength=0.9), family=TINY)
    assert p.mode is Mode.INPAINT and p.label == "Inpaint"
    assert p.request.inpaint is not None and p.request.init is not None
    assert p.area.contains(mask.document_bounds())
    assert p.paste_mask is not None and p.paste_mask.shape == (p.area.h, p.area.w)


def test_selection_makes_inpaint_when_there_is_no_mask_layer() -> None:
    doc = document(128, 128, layer("paint", gradient(128, 128)))
    doc.selection = np.zeros((128, 128), np.float32)
    doc.selection[20:30, 50:70] = 1.0
    p = plan(doc, settings(), family=TINY)
    assert p.mode is Mode.INPAINT
    from sfumato.canvas.model.geometry import Rect
    assert p.area.contains(Rect(50, 20, 20, 10))


def test_an_empty_selection_is_no_selection() -> None:
    doc = document(64, 64)
    doc.selection = np.zeros((64, 64), np.float32)
    assert plan(doc, settings(), family=TINY).mode is Mode.TXT2IMG


def test_visible_empty_mask_layer_is_a_clear_error() -> None:
    doc = document(64, 64, layer("Mask", rgba(8, 8, alpha=0), role=Role.INPAINT_MASK))
    with pytest.raises(EmptyMaskError, match="'Mask' is empty"):
        plan(doc, settings(), family=TINY)
    assert detect_mode(doc, 1.0) is Mode.INPAINT


def test_hidden_mask_layer_is_ignored() -> None:
    doc = document(64, 64, layer("Mask", rgba(8, 8), role=Role.INPAINT_MASK, visible=False))
    assert plan(doc, settings(), family=TINY).mode is Mode.TXT2IMG


def test_no_model_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match="no model"):
        plan(document(64, 64), settings(model=None), family=TINY)


def test_request_carries_the_settings() -> None:
    from sfumato.inference.request import Sampler

    s = settings(negative="blurry", cfg=5.5, sampler=Sampler.EULER_A, batch=2, seed=42)
    p = plan(document(64, 64), s, family=TINY)
    r = p.request
    assert (r.prompt, r.negative, r.cfg, r.sampler, r.batch, r.seed, r.steps) == (
        "a garden", "blurry", 5.5, Sampler.EULER_A, 2, 42, 4
    )
    assert r.model.source == "tiny"


def test_equal_documents_give_equal_requests() -> None:
    def make() -> object:
        mask = layer("mask", rgba(10, 10), role=Role.INPAINT_MASK, x=20, y=20)
        return plan(document(96, 96, mask, layer("p", gradient(96, 96))), settings(), family=TINY).request

    assert make() == make()


def test_layers_inside_offset_groups_are_read_at_their_document_position() -> None:
    from sfumato.canvas.model.geometry import Rect
    from sfumato.canvas.model.layers import GroupLayer

    mask = layer("mask", rgba(10, 10), role=Role.INPAINT_MASK, x=5, y=5)
    group = GroupLayer("masks", [mask], x=100, y=80)
    doc = document(256, 256, layer("paint", gradient(256, 256)))
    doc.root.insert(0, group)
    p = plan(doc, settings(), family=TINY)
    assert p.area.contains(Rect(105, 85, 10, 10))
    assert p.paste_mask is not None
    inside = p.paste_mask[85 - p.area.y : 95 - p.area.y, 105 - p.area.x : 115 - p.area.x]
    assert inside.max() == 1.0 and p.paste_mask.sum() <= 100.0
