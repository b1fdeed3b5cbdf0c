"""From document to generation: :func:`plan` reads a document and settings and returns a
:class:`Plan` — the mode, the area, the generation size and one
:class:`~sfumato.inference.request.GenerationRequest` — plus what placing the result needs.

The same function serves the window, live mode and ``sfumato render``. It is Qt-free and
torch-free. Mode rules:

- a visible ``inpaint-mask`` layer with pixels, or (without mask layers) a selection →
  **inpaint** over the mask's context area;
- otherwise, a picture on a canvas partly bare (grown around it, or a solid picture on
  an empty canvas: :mod:`sfumato.planner.outpaint`) → **expand** ("Expand"): an inpaint of
  the bare canvas at full strength, over its context area, starting from a model-free
  infill; the picture stays byte-identical;
- otherwise visible paint content and strength < 1 → **img2img** ("Refine") of the whole
  canvas;
- otherwise (an empty canvas, or strength 1) → **txt2img** ("Generate") of the canvas;
- with an instruction-edit model (its family's ``edits``: FLUX.1 Kontext, Qwen-Image-Edit)
  and visible paint → **edit** ("Edit"): the visible canvas over the area is the picture
  to edit (``request.edit``, ``init`` at strength 1: the model redraws it from noise, the
  picture its context); with a mask or a selection the area is the mask's context area and
  the mask is the request's inpaint mask, placed through the paste mask as an inpaint's.

Regions, controls and reference pictures combine with any mode. All request arrays are at the *generation
size* (``plan.size``, a multiple of 8 near the model's native resolution); the area is in
document pixels, and :func:`sfumato.planner.placement.place_result` scales the result
back onto it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.render.composite import flatten
from sfumato.inference.request import (
    FillMode,
    GenerationRequest,
    InitImage,
    InpaintSpec,
    ModelRef,
    RegionSpec,
    RequestError,
)
from sfumato.planner.area import plan_area
from sfumato.planner.capabilities import check_request, family_named
from sfumato.planner.controls import PlannedControl, plan_controls
from sfumato.planner.errors import EmptyMaskError, ModelCannotError, PlanError
from sfumato.planner.families import FamilyInfo, family_for_model
from sfumato.planner.layerpixels import over_white
from sfumato.planner.mask import denoise_mask, mask_source, paste_feather, paste_mask
from sfumato.planner.outpaint import bare_bounds, expand_fill, expands, uncovered
from sfumato.planner.prompts import (
    LoraLookup,
    RecordedPrompts,
    WildcardLists,
    Wildcards,
    prompt_loras,
    resolve_prompt,
    split_tags,
)
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.references import PlannedReference, plan_references
from sfumato.planner.regions import PlannedRegion, plan_regions
from sfumato.planner.resample import resize_image, resize_mask
from sfumato.planner.sizing import Size, generation_size
from sfumato.vocabulary.families import SUPPORTED_FAMILIES
from sfumato.vocabulary.kinds import Mode

log = logging.getLogger(__name__)

__all__ = ["Mode", "Plan", "detect_mode", "has_paint", "model_edits", "plan"]


@dataclass(frozen=True, eq=False)
class Plan:
    """One planned generation.

    - ``area``: where the result goes, document pixels.
    - ``size``: the generation size (``request.width`` × ``request.height``).
    - ``paste_mask``: inpaint only — float32 ``(area.h, area.w)`` in [0, 1], the alpha
      the result is placed with (0 outside the mask, so those pixels stay untouched).
    - ``regions`` / ``controls`` / ``references``: what the request's regions, controls
      and reference pictures came from (layer names; masks at the generation size), for
      display and tests.
    - ``notes``: things the user may want to know (dropped regions, skipped controls).
    - ``prompts``: the prompts as the generation record stores them (wildcards resolved,
      LoRA tags kept; the request holds them without tags), :mod:`sfumato.planner.prompts`.
    """

    mode: Mode
    area: Rect
    size: Size
    request: GenerationRequest
    family: FamilyInfo
    paste_mask: np.ndarray | None = None
    regions: tuple[PlannedRegion, ...] = ()
    controls: tuple[PlannedControl, ...] = ()
    references: tuple[PlannedReference, ...] = ()
    notes: tuple[str, ...] = field(default=())
    prompts: RecordedPrompts | None = None

    @property
    def label(self) -> str:
        return self.mode.label


def has_paint(doc: Document) -> bool:
    """Whether any visible paint or generated layer holds pixels."""
    return any(
        layer.role.is_image and layer.opacity > 0 and layer.effectively_visible()
        and not layer.surface.is_empty()
        for layer in doc.pixel_layers()
    )


def detect_mode(doc: Document, strength: float, *, edits: bool = False) -> Mode:
    """The mode :func:`plan` would choose (cheap: no pixels are composited). ``edits``: the
    model is an instruction-edit model (:func:`model_edits`).

    A visible but empty mask layer still counts as inpaint here (the button says
    "Inpaint"; planning then explains that the mask is empty).
    """
    if edits and has_paint(doc):
        return Mode.EDIT
    try:
        if mask_source(doc) is not None:
            return Mode.INPAINT
    except EmptyMaskError:
        return Mode.INPAINT
    if expands(doc):
        return Mode.EXPAND
    if strength < 1.0 and has_paint(doc):
        return Mode.IMG2IMG
    return Mode.TXT2IMG


def model_edits(family_name: str | None) -> bool:
    """Whether the family called ``family_name`` is made for instruction edits."""
    family = family_named(family_name)
    return bool(family is not None and family.edits)


def plan(
    doc: Document,
    settings: GenerationSettings,
    *,
    family: FamilyInfo | None = None,
    area: Rect | None = None,
    loras: LoraLookup | None = None,
    wildcards: WildcardLists | None = None,
) -> Plan:
    """Plan one generation of ``doc`` with ``settings`` (see the module docstring).

    ``family`` overrides the planning facts read from ``settings.model`` (tests, or a
    caller that already knows them). ``area`` chooses the document rectangle of a txt2img
    or img2img generation instead of the whole canvas (live mode's window that follows the
    brush); an inpaint always plans its own area around the mask. ``loras`` lists the
    installed LoRAs the prompts' ``<lora:NAME:w>`` tags are looked up in (default
    :func:`~sfumato.inference.catalog.find_loras`) and ``wildcards`` gives the wildcard
    lists (default: the user's ``wildcards`` folder, read only when a prompt names one);
    wildcards are resolved with ``settings.seed``. Raises :class:`PlanError` (with a message for the
    user) when the document cannot be generated as it is.
    """
    if not settings.model:
        raise PlanError(
            "no model chosen: pass --model PATH (a .safetensors checkpoint or a diffusers "
            "folder) or pick one in the window"
        )
    info = family or family_for_model(settings.model, settings.model_family)
    mode = detect_mode(doc, settings.strength, edits=model_edits(settings.model_family or info.name))
    edit, expand = mode is Mode.EDIT, mode is Mode.EXPAND
    # an empty mask raises here; an edit takes the mask or selection when there is one
    source = mask_source(doc) if mode is Mode.INPAINT or edit else None
    if expand:  # around the bare canvas, as an inpaint around its mask
        area = plan_area(doc.rect, bare_bounds(doc), info.native)
    elif area is None or mode is Mode.INPAINT or source is not None:
        area = plan_area(doc.rect, None if source is None else source.bounds, info.native)
    elif area.empty or not doc.rect.contains(area):
        raise PlanError(f"the area {area} is not inside the document ({doc.width}x{doc.height})")
    size = generation_size(area.w, area.h, info)
    notes: list[str] = []

    init: InitImage | None = None
    inpaint: InpaintSpec | None = None
    pasted: np.ndarray | None = None
    if mode is not Mode.TXT2IMG:
        picture = over_white(flatten(doc, area))
        init = InitImage(resize_image(picture, size), strength=1.0 if edit or expand else settings.strength)
    if source is not None:
        area_mask = source.read(area)
        if not float(area_mask.max(initial=0.0)) > 0.0:
            raise EmptyMaskError("the inpaint mask is empty: paint where to regenerate")
        pasted = paste_mask(area_mask, paste_feather(area_mask))
        denoise = resize_mask(denoise_mask(area_mask, 1.0 if edit else settings.strength), size)
        inpaint = InpaintSpec(denoise, fill=FillMode.KEEP if edit else settings.fill)
    elif expand:
        area_mask = uncovered(doc, area)
        pasted = (area_mask > 0).astype(np.float32)  # unfeathered: nothing lies beneath to fade into
        fill = expand_fill(settings.fill)
        inpaint = InpaintSpec(resize_mask(denoise_mask(area_mask, 1.0), size), fill=fill)
        notes.append(f"Expand: the canvas no picture covers is painted, starting from a {fill.value} infill")

    lists = Wildcards(wildcards)
    prompt = resolve_prompt(settings.prompt, settings.seed, lists)
    negative = resolve_prompt(settings.negative, settings.seed, lists)
    planned_regions, region_notes = plan_regions(
        doc, area, prompt, negative, size, include_prompt=settings.regions_include_prompt
    )
    notes += region_notes
    main, main_negative = split_tags(prompt), split_tags(negative)
    region_texts = [
        (
            split_tags(resolve_prompt(r.prompt, settings.seed, lists)),
            split_tags(resolve_prompt(r.negative, settings.seed, lists)),
        )
        for r in planned_regions
    ]
    lora_specs, lora_tweaks, lora_notes = prompt_loras(
        [main, main_negative, *(text for pair in region_texts for text in pair)],
        settings.model_family or _known(info.name),
        loras,
    )
    notes += lora_notes
    planned_controls, control_notes = plan_controls(doc, area, size, settings.control_model_map)
    notes += control_notes
    planned_references, reference_notes = plan_references(doc, size, info, planned_regions)
    notes += reference_notes

    request = GenerationRequest(
        prompt=main.text,
        negative=main_negative.text,
        model=ModelRef(settings.model, settings.model_family or _known(info.name)),
        width=size.width,
        height=size.height,
        sampler=settings.sampler,
        scheduler_tweaks=lora_tweaks,
        steps=settings.steps,
        cfg=settings.cfg,
        seed=settings.seed,
        batch=settings.batch,
        init=init,
        inpaint=inpaint,
        regions=tuple(
            RegionSpec(r.mask, own.text, own_negative.text)
            for r, (own, own_negative) in zip(planned_regions, region_texts, strict=True)
        ),
        controls=tuple(c.spec for c in planned_controls),
        loras=lora_specs,
        references=tuple(r.spec for r in planned_references),
        edit=edit,
    )
    try:
        request.validate()
    except RequestError as error:
        raise PlanError(str(error)) from None
    problems = check_request(request, request.model.family)
    if problems:
        raise ModelCannotError(" ".join(problems))
    # the request says what the plan decided (an expand is an inpaint of the bare canvas)
    assert request.mode is (Mode.INPAINT if expand else mode), (request.mode, mode)
    log.info(
        "plan: %s over %s at %s (%s), %d region(s), %d control(s), %d reference(s)",
        mode.value, area, size, info.name, len(request.regions), len(request.controls),
        len(request.references),
    )
    return Plan(
        mode=mode,
        area=area,
        size=size,
        request=request,
        family=info,
        paste_mask=pasted,
        regions=tuple(planned_regions),
        controls=tuple(planned_controls),
        references=tuple(planned_references),
        notes=tuple(notes),
        prompts=RecordedPrompts(
            main.recorded,
            main_negative.recorded,
            tuple((own.recorded, own_negative.recorded) for own, own_negative in region_texts),
        ),
    )


def _known(name: str) -> str | None:
    return name if name in SUPPORTED_FAMILIES else None
