"""Reference layers → ``request.references``: the layer's own pixels on white, sized for
the family (aspect kept, native budget, sides on the family's multiple), a region's mask
for a reference inside a region's group, hidden layers ignored, the families that take no
references stopped with a sentence."""

from __future__ import annotations

import numpy as np
import pytest
from plandocs import document, gradient, layer, rgba
from sfumato.canvas.model.layers import GroupLayer, ReferenceSettings, Role
from sfumato.planner.capabilities import document_problems
from sfumato.planner.errors import ModelCannotError
from sfumato.planner.families import FAMILIES, FamilyInfo
from sfumato.planner.plan import plan
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.record import generation_record
from sfumato.planner.references import reference_size
from sfumato.vocabulary.families import FLUX2, SD3
from sfumato.vocabulary.kinds import Mode, ReferenceKind, Sampler

KLEIN = FamilyInfo.for_native(FLUX2, 64, 16)
SETTINGS = GenerationSettings(prompt="a portrait", model="m", model_family=FLUX2, sampler=Sampler.EULER)


def test_reference_size_keeps_aspect_fits_budget_and_multiple() -> None:
    klein = FAMILIES[FLUX2]
    assert klein.multiple == 16
    size = reference_size(3000, 2000, klein)  # 6 Mpx, 3:2 → about 1254x836 under 1024²
    assert size.width % 16 == 0 and size.height % 16 == 0
    assert size.pixels <= klein.native**2
    assert size.pixels > 0.9 * klein.native**2
    assert abs(size.width / size.height - 1.5) < 0.03
    # small pictures are not enlarged, only brought onto the multiple
    assert reference_size(100, 70, klein) == reference_size(100, 70, klein)
    small = reference_size(100, 70, klein)
    assert (small.width, small.height) == (96, 64)
    # a long strip is bounded by the largest side
    strip = reference_size(10000, 50, klein)
    assert strip.width <= klein.max_side and strip.height >= 16


def test_plan_builds_reference_from_layer_bounds_on_white_at_family_size() -> None:
    pixels = rgba(40, 60, (200, 30, 30), alpha=0)
    pixels[:, :30] = (200, 30, 30, 255)  # left half opaque red, right half transparent
    pixels[0, 59] = (0, 0, 0, 255)  # ... but for one dot: the bounds are the layer's 60x40
    ref = layer("face", pixels, role=Role.REFERENCE, x=100, y=-10,  # partly off the canvas
                reference=ReferenceSettings(ReferenceKind.FACE, strength=1.5, start=0.2, end=0.7))
    doc = document(64, 64, ref, layer("paint", gradient(64, 64)))
    p = plan(doc, SETTINGS, family=KLEIN)
    assert len(p.request.references) == 1
    spec = p.request.references[0]
    # 60x40 = 2400 px is within the 64² budget: kept, sides floored onto 16s: 48x32
    assert spec.image.shape == (32, 48, 3) and spec.image.dtype == np.uint8
    assert (spec.kind, spec.strength, spec.start, spec.end) == (ReferenceKind.FACE, 1.5, 0.2, 0.7)
    assert spec.mask is None
    assert (spec.image[:, :20] == (200, 30, 30)).all()  # the red half
    assert (spec.image[-16:, -16:] == 255).all()  # transparent → white paper
    # the reference is no part of the init picture nor of the mode
    assert p.mode is Mode.TXT2IMG
    # Klein uses the picture whole: the plan says what will not apply
    note = " ".join(p.notes)
    assert "'face'" in note and "face" in note and "1.5" in note and "0.2..0.7" in note


def test_large_reference_is_shrunk_to_the_native_budget() -> None:
    ref = layer("style", gradient(300, 200), role=Role.REFERENCE)
    p = plan(document(64, 64, ref), SETTINGS, family=KLEIN)
    image = p.request.references[0].image
    h, w = image.shape[:2]
    assert h % 16 == 0 and w % 16 == 0 and w * h <= 64 * 64
    assert (w, h) == (48, 64)  # 200x300 × sqrt(64²/60000) = 52x78 → floored onto 16s
    # plain content at strength 1: nothing for a note
    assert not [n for n in p.notes if "whole" in n]


def test_hidden_and_empty_reference_layers_are_ignored() -> None:
    hidden = layer("hidden", gradient(32, 32), role=Role.REFERENCE, visible=False)
    empty = layer("empty", rgba(8, 8, alpha=0), role=Role.REFERENCE)
    group = GroupLayer("off", [layer("inside", gradient(32, 32), role=Role.REFERENCE)], visible=False)
    doc = document(64, 64, hidden, empty)
    doc.root.append(group)
    p = plan(doc, SETTINGS, family=KLEIN)
    assert p.request.references == ()
    assert any("'empty'" in n for n in p.notes)
    assert not any("hidden" in n or "inside" in n for n in p.notes)


def test_reference_in_a_regions_group_carries_that_regions_mask() -> None:
    left = rgba(64, 32, alpha=255)
    sky_ref = layer("sky look", gradient(16, 16), role=Role.REFERENCE)
    sky = layer("sky", left, role=Role.REGION, prompt="a stormy sky")
    free = layer("global look", gradient(16, 16), role=Role.REFERENCE)
    meadow = layer("meadow", rgba(64, 64, alpha=255), role=Role.REGION, prompt="a meadow")
    doc = document(64, 64, free)
    doc.root.append(GroupLayer("Sky", [sky_ref, sky]))
    doc.root.append(meadow)
    p = plan(doc, SETTINGS, family=KLEIN)
    by_name = {r.layer_name: r for r in p.references}
    assert set(by_name) == {"sky look", "global look"}
    assert by_name["global look"].spec.mask is None
    mask = by_name["sky look"].spec.mask
    assert mask is not None and mask.shape == (p.size.height, p.size.width) and mask.dtype == np.float32
    assert mask[:, : p.size.width // 2 - 1].min() == 1.0  # the sky's half
    assert mask[:, p.size.width // 2 + 1 :].max() == 0.0  # the meadow's half
    assert by_name["sky look"].region_names == ("sky",)
    assert any("region (sky)" in n for n in p.notes)  # Klein cannot mask it
    # the record keeps the references and the layers they came from
    record = generation_record(p)
    assert [r["layer"] for r in record["references"]] == ["global look", "sky look"]
    assert [r["regional"] for r in record["references"]] == [False, True]


def test_reference_whose_region_is_hidden_applies_nowhere() -> None:
    ref = layer("look", gradient(16, 16), role=Role.REFERENCE)
    region = layer("sky", rgba(64, 64, alpha=255), role=Role.REGION, prompt="sky", visible=False)
    doc = document(64, 64)
    doc.root.append(GroupLayer("Sky", [ref, region]))
    p = plan(doc, SETTINGS, family=KLEIN)
    assert p.request.references == ()
    assert any("'look' skipped" in n for n in p.notes)


def test_family_without_references_is_named_before_and_at_plan_time() -> None:
    ref = layer("look", gradient(16, 16), role=Role.REFERENCE)
    doc = document(64, 64, ref)
    problems = document_problems(doc, Mode.TXT2IMG, SD3, Sampler.EULER)
    assert len(problems) == 1 and "reference pictures" in problems[0] and "FLUX.2 Klein" in problems[0]
    assert document_problems(doc, Mode.TXT2IMG, FLUX2, Sampler.EULER) == ()
    ref.visible = False
    assert document_problems(doc, Mode.TXT2IMG, SD3, Sampler.EULER) == ()
    ref.visible = True
    settings = GenerationSettings(prompt="x", model="m", model_family=SD3, sampler=Sampler.EULER)
    with pytest.raises(ModelCannotError, match="reference pictures"):
        plan(doc, settings, family=FamilyInfo.for_native(SD3, 64, 16))


def test_an_edited_reference_is_planned_afresh() -> None:
    """Plans reuse a reference's sized picture while its pixels stay the same (live mode
    plans every stroke); painting on it gives the new picture."""
    from sfumato.canvas import editing

    ref = layer("look", rgba(32, 32, (10, 200, 10)), role=Role.REFERENCE)
    doc = document(64, 64, ref)
    first = plan(doc, SETTINGS, family=KLEIN).request.references[0].image
    again = plan(doc, SETTINGS, family=KLEIN).request.references[0].image
    assert np.array_equal(first, again) and (first == (10, 200, 10)).all()
    editing.put_pixels(doc, ref, rgba(32, 16, (250, 0, 0)), 0, 0)
    edited = plan(doc, SETTINGS, family=KLEIN).request.references[0].image
    assert (edited[:, :12] == (250, 0, 0)).all() and (edited[:, 20:] == (10, 200, 10)).all()
    # a copy of the layer tree (what the worker plans from) gives the same picture
    from sfumato.canvas.model.document import Document
    from sfumato.canvas.model.layers import copy_layer

    root = copy_layer(doc.root)
    assert isinstance(root, GroupLayer)
    copy = Document(doc.width, doc.height, root=root)
    assert np.array_equal(plan(copy, SETTINGS, family=KLEIN).request.references[0].image, edited)


def test_live_mode_reads_a_reference_edit_as_a_change_anywhere() -> None:
    """Painting on a reference layer changes the whole picture's guide, not the pixels
    under the brush: live mode keeps its window (``None``) instead of following it."""
    from sfumato.canvas import editing
    from sfumato.planner.live import affects_picture, changed_rect

    ref = layer("look", rgba(8, 8, (1, 2, 3)), role=Role.REFERENCE)
    paint = layer("paint", rgba(8, 8, (1, 2, 3)))
    doc = document(64, 64, ref, paint)
    events: list[object] = []
    doc.changed.connect(events.append)
    editing.put_pixels(doc, ref, rgba(4, 4, (9, 9, 9)), 40, 40)
    editing.put_pixels(doc, paint, rgba(4, 4, (9, 9, 9)), 40, 40)
    ref_event, paint_event = (e for e in events if type(e).__name__ == "PixelsChanged")
    assert affects_picture(ref_event) and changed_rect(ref_event) is None
    assert changed_rect(paint_event) is not None
