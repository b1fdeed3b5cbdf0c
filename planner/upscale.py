"""Upscale & refine: a picture made larger, then redrawn tile by tile at low strength.

Torch-free: this module decides the sizes, the tiles, each tile's request and how the
results are blended; whoever calls it supplies the two functions that touch a model:

- ``super_resolve(picture) -> picture`` (optional): a super-resolution model at its own
  scale (:mod:`sfumato.inference.upscalers`); without one the picture is enlarged with
  Lanczos (:func:`~sfumato.planner.resample.resize_image`).
- ``run_tile(request, on_step) -> picture`` (optional): runs one
  :class:`~sfumato.inference.request.GenerationRequest` through the engine (reporting
  ``on_step(step, total)``) and returns its uint8 picture, or raises the engine's
  :class:`~sfumato.inference.errors.EngineError` (``CancelledError`` when cancelled).
  Without it there is no refine.

``sfumato upscale`` and the window's Image → Upscale… share :func:`upscale_picture`.

Decisions (each stated once, here):

- **Tiles** are the model family's native side (``--tile`` overrides), overlapping by
  :data:`DEFAULT_OVERLAP` px but at most a quarter of the tile, laid out by
  :func:`~sfumato.planner.tiles.tile_grid` and blended with its feathered weights.
- **Generation size** of a tile is :func:`~sfumato.planner.sizing.generation_size` of the
  tile, so a native tile is generated at its own size (no resampling); a larger
  ``--tile`` is generated at the model's size and scaled back (a note says so).
- **Seeds**: tile ``i`` (raster order, :class:`~sfumato.planner.tiles.Tile.index`) uses
  ``seed + i`` (wrapped below 2**63): the engine's batch convention, so one tile can be
  re-run by hand with ``sfumato render --seed``. Wildcards resolve once, with ``seed``.
- **Strength** :data:`DEFAULT_STRENGTH` (0.3): the picture's composition and colours stay,
  detail is redrawn; img2img of every tile, the prompt and LoRAs of the whole picture.
- **Memory**: one tile's request and result at a time, plus the output picture and the
  blend's open overlaps (:class:`~sfumato.planner.tiles.TileBlender`).
- **Cancel**: the engine checks its flag every step; this loop checks it before every tile.
- **Documents**: given the document (an .ora, the open document), each tile's request
  also gets the document's regions and control layers planned over the tile's area in
  *document* coordinates (the tile's rectangle divided by the scale, widened to whole
  document pixels, then cropped back to the tile exactly): :func:`plan_regions` and
  :func:`plan_controls` with their own rules, so a region covering less than
  :data:`~sfumato.planner.regions.MIN_COVERAGE` of a tile is dropped there and a tile
  wholly inside one region gets that region alone. A flat picture has neither.
- **Scale 1** is a refine at the picture's own size (no enlarging): a whole-canvas
  Refine beyond what the model generates in one go (:func:`tiled_refine_reason`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import Role
from sfumato.inference.errors import CancelledError
from sfumato.inference.request import (
    GenerationRequest,
    InitImage,
    ModelRef,
    RegionSpec,
    RequestError,
)
from sfumato.planner.capabilities import check_request
from sfumato.planner.controls import plan_controls
from sfumato.planner.errors import ModelCannotError, PlanError
from sfumato.planner.families import FamilyInfo, family_for_model
from sfumato.planner.prompts import (
    LoraLookup,
    WildcardLists,
    Wildcards,
    prompt_loras,
    resolve_prompt,
    split_tags,
)
from sfumato.planner.recipe import GenerationSettings
from sfumato.planner.regions import plan_regions, region_prompt
from sfumato.planner.resample import resize_image, resize_mask
from sfumato.planner.sizing import AreaTooLargeError, Size, generation_size
from sfumato.planner.tiles import Tile, TileBlender, TileGrid, tile_grid
from sfumato.vocabulary.families import SUPPORTED_FAMILIES

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_STRENGTH",
    "MAX_OUTPUT_SIDE",
    "SCALES",
    "SCALES_ALLOWED",
    "RunTile",
    "SuperResolve",
    "UpscalePlan",
    "UpscaleProgress",
    "enlarge",
    "plan_upscale",
    "refine_tiles",
    "tile_area",
    "tile_request",
    "tiled_refine_reason",
    "upscale_record",
    "upscale_picture",
]

#: The factors offered (per side).
SCALES = (2, 3, 4)
#: The factors the planner takes: also 1, a refine at the picture's own size.
SCALES_ALLOWED = (1, *SCALES)
DEFAULT_STRENGTH = 0.3
DEFAULT_OVERLAP = 64
#: Longest side of an upscaled picture (its uint8 pixels alone are 768 MiB at this size).
MAX_OUTPUT_SIDE = 16384
#: Most super-resolution passes to reach the size (a 2x model for --scale 4 runs twice).
MAX_PASSES = 3

#: ``super_resolve(picture) -> larger picture`` (uint8 RGB in and out).
SuperResolve = Callable[[np.ndarray], np.ndarray]
#: ``run_tile(request, on_step) -> picture`` (uint8 ``(request.height, request.width, 3)``).
RunTile = Callable[[GenerationRequest, Callable[[int, int], None]], np.ndarray]


class _Flag(Protocol):
    """Anything with ``is_set()`` (a CancelToken, a threading.Event)."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class UpscaleProgress:
    """Where an upscale is: ``stage`` ``"enlarge"`` (super-resolution or Lanczos) or
    ``"refine"``; in the refine, tile ``tile`` (0-based) of ``tiles`` at ``step`` of
    ``steps`` of that tile's run."""

    stage: str
    tile: int = 0
    tiles: int = 0
    step: int = 0
    steps: int = 0

    @property
    def fraction(self) -> float:
        """0..1 over the whole refine (tiles and steps); 0 while enlarging."""
        if self.stage != "refine" or self.tiles <= 0:
            return 0.0
        within = self.step / self.steps if self.steps > 0 else 0.0
        return min(1.0, (self.tile + within) / self.tiles)


@dataclass(frozen=True)
class UpscalePlan:
    """What an upscale will do: ``source`` size → ``size`` (``scale`` × per side); when
    ``refine`` is set, the tile ``grid`` over ``size`` and the ``template`` request every
    tile's request is made from (no init; its size, seed and picture are each tile's)."""

    source: Size
    size: Size
    scale: int
    grid: TileGrid | None = None
    template: GenerationRequest | None = None
    family: FamilyInfo | None = None
    strength: float = DEFAULT_STRENGTH
    notes: tuple[str, ...] = ()
    #: The document whose regions and control layers each tile gets (``None``: a flat
    #: picture). A copy-on-write snapshot when planning runs on another thread.
    document: Document | None = None
    #: What :func:`tile_request` needs to plan the regions of a tile: the prompts as
    #: resolved (LoRA tags kept), the wildcard lists, whether regions add the document's
    #: prompt, and the ControlNet files per kind.
    prompts: tuple[str, str] = ("", "")
    wildcards: Any = None
    include_prompt: bool = True
    control_models: Mapping[Any, str] | None = None

    @property
    def refine(self) -> bool:
        return self.grid is not None and self.template is not None


def _known(name: str) -> str | None:
    return name if name in SUPPORTED_FAMILIES else None


def plan_upscale(
    width: int,
    height: int,
    scale: int,
    settings: GenerationSettings | None = None,
    *,
    strength: float = DEFAULT_STRENGTH,
    tile: int | None = None,
    overlap: int | None = None,
    family: FamilyInfo | None = None,
    loras: LoraLookup | None = None,
    wildcards: WildcardLists | None = None,
    document: Document | None = None,
) -> UpscalePlan:
    """Plan upscaling a ``width × height`` picture by ``scale``; with ``settings`` (a model
    and a prompt), also its tiled refine at ``strength``. With ``document`` (of the
    picture's size) every tile also gets the document's regions and controls over it.
    Scale 1 is a refine alone and needs ``settings``. Raises :class:`PlanError` with a
    message for the user."""
    if scale not in SCALES_ALLOWED:
        raise PlanError(f"the scale must be one of {', '.join(map(str, SCALES_ALLOWED))}, got {scale}")
    if width <= 0 or height <= 0:
        raise PlanError(f"the picture is empty ({width}x{height})")
    if scale == 1 and settings is None:
        raise PlanError("scale 1 keeps the size: it is a refine, which needs a model (--model)")
    if document is not None and (document.width, document.height) != (width, height):
        raise ValueError(f"the document is {document.width}x{document.height}, the picture {width}x{height}")
    size = Size(width * scale, height * scale)
    if max(size.width, size.height) > MAX_OUTPUT_SIDE:
        raise PlanError(
            f"{width}x{height} upscaled {scale}x is {size}; the most Sfumato makes is "
            f"{MAX_OUTPUT_SIDE} pixels a side. Choose a smaller scale or crop the picture."
        )
    source = Size(width, height)
    if settings is None:
        return UpscalePlan(source, size, scale)
    if not settings.model:
        raise PlanError("no model chosen for the refine: pass --model PATH, or upscale without refining")
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise PlanError(f"the refine strength must be above 0 and at most 1, got {strength}")
    info = family or family_for_model(settings.model, settings.model_family)
    side = info.native if tile is None else tile
    if side < 16 or side > MAX_OUTPUT_SIDE:
        raise PlanError(f"the tile must be 16..{MAX_OUTPUT_SIDE} pixels, got {side}")
    if side % 8:
        raise PlanError(f"the tile must be a multiple of 8 pixels, got {side}")
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, side // 4)
    if not 0 <= overlap <= side // 2:
        raise PlanError(f"the overlap must be 0..{side // 2} pixels (half the {side} px tile), got {overlap}")
    grid = tile_grid(size.width, size.height, side, overlap)
    notes: list[str] = []
    full = generation_size(min(side, size.width), min(side, size.height), info)
    if (full.width, full.height) != (min(side, size.width), min(side, size.height)):
        notes.append(
            f"tiles of {side} px are generated at {full} (what the {info.name} model makes) and "
            f"scaled back; --tile {info.native} keeps every pixel"
        )

    lists = Wildcards(wildcards)
    prompt_text = resolve_prompt(settings.prompt, settings.seed, lists)
    negative_text = resolve_prompt(settings.negative, settings.seed, lists)
    main, negative = split_tags(prompt_text), split_tags(negative_text)
    region_texts = [] if document is None else [
        split_tags(resolve_prompt(text, settings.seed, lists))
        for layer in document.pixel_layers(Role.REGION) if layer.effectively_visible()
        for text in (
            region_prompt(layer.prompt, prompt_text, settings.regions_include_prompt),
            region_prompt(layer.negative, negative_text, settings.regions_include_prompt),
        )
    ]  # only for their LoRA tags: every tile's regions share the LoRAs of the whole picture
    lora_specs, tweaks, lora_notes = prompt_loras(
        [main, negative, *region_texts], settings.model_family or _known(info.name), loras
    )
    notes += lora_notes
    template = GenerationRequest(
        prompt=main.text,
        negative=negative.text,
        model=ModelRef(settings.model, settings.model_family or _known(info.name)),
        width=full.width,
        height=full.height,
        sampler=settings.sampler,
        scheduler_tweaks=tweaks,
        steps=settings.steps,
        cfg=settings.cfg,
        seed=settings.seed,
        loras=lora_specs,
    )
    result = UpscalePlan(
        source, size, scale, grid, template, info, strength, (), document,
        (prompt_text, negative_text), lists, settings.regions_include_prompt,
        settings.control_model_map if document is not None else None,
    )
    first = next(iter(grid))
    probe = tile_request(result, first, np.zeros((first.y + first.h, first.x + first.w, 3), np.uint8))
    if document is not None:  # any tile's regions: a model without regional prompts is told now
        probe = probe.replace(regions=probe.regions or _whole_picture_regions(result, probe))
    try:
        probe.validate()
    except RequestError as error:
        raise PlanError(str(error)) from None
    problems = check_request(probe, probe.model.family)
    if problems:
        raise ModelCannotError(" ".join(problems))
    if document is not None:
        notes += _document_notes(document, result)
    log.info("upscale %s -> %s, refine in %d tile(s) of %d px (overlap %d) at %s",
             source, size, len(grid), side, overlap, full)  # fmt: skip
    return dataclasses.replace(result, notes=tuple(notes))


def _whole_picture_regions(plan: UpscalePlan, probe: GenerationRequest) -> tuple[RegionSpec, ...]:
    """The regions of the whole document (at the probe's size), for checking the model."""
    assert plan.document is not None
    doc = plan.document
    regions, _ = plan_regions(doc, doc.rect, *plan.prompts, Size(probe.width, probe.height),
                              include_prompt=plan.include_prompt)  # fmt: skip
    return tuple(RegionSpec(r.mask, split_tags(r.prompt).text, split_tags(r.negative).text) for r in regions)


def _document_notes(doc: Document, plan: UpscalePlan) -> list[str]:
    regions = sum(1 for layer in doc.pixel_layers(Role.REGION) if layer.effectively_visible())
    controls = sum(1 for layer in doc.pixel_layers(Role.CONTROL) if layer.effectively_visible())
    if not regions and not controls:
        return []
    parts = [f"{regions} region(s)"] * bool(regions) + [f"{controls} control layer(s)"] * bool(controls)
    return [f"{' and '.join(parts)} planned over each tile"]


def tiled_refine_reason(width: int, height: int, family: FamilyInfo) -> str | None:
    """Why a whole-canvas Refine of ``width × height`` is better done in tiles, or ``None``.

    The one owner of "too large": the canvas is larger than what ``family`` generates in
    one go (:func:`~sfumato.planner.sizing.generation_size` shrinks it), so a plain Refine
    would be generated small and scaled up; a tiled refine at scale 1 keeps every pixel.
    """
    try:
        gen = generation_size(width, height, family)
    except AreaTooLargeError:
        return (f"The canvas is {width}×{height} px, more than the {family.name} model can refine "
                "in one go; refine it in tiles at full resolution.")  # fmt: skip
    if gen.width >= width and gen.height >= height:
        return None
    return (f"The canvas is {width}×{height} px; the {family.name} model refines it at {gen} and "
            "the result is scaled up (softer). Refining in tiles keeps full resolution.")  # fmt: skip


def upscale_record(plan: UpscalePlan, upscaler: str | None = None) -> dict[str, Any]:
    """The record of an upscale (a generated layer's ``generation``, the PNG's
    ``parameters`` fields): the refine's request summary (A1111's keys) plus the
    upscale's own ``extra`` fields (``Upscale``, ``Upscaler``, ``Tile``)."""
    extra = {"Upscale": f"{plan.scale}x", "Upscaler": upscaler or "Lanczos"}
    if not plan.refine:
        return {"width": plan.size.width, "height": plan.size.height, "extra": extra}
    assert plan.template is not None and plan.grid is not None
    summary = dict(plan.template.summary())
    summary.update(mode="img2img", strength=plan.strength, width=plan.size.width, height=plan.size.height)
    summary["prompt"], summary["negative"] = plan.prompts
    extra["Tile"] = f"{plan.grid.tile} px, overlap {plan.grid.overlap}, seed + tile index"
    summary["extra"] = extra
    return summary


def tile_seed(seed: int, index: int) -> int:
    """Tile ``index``'s seed: ``seed + index``, below 2**63 (the request's limit)."""
    return (seed + index) % 2**63


def tile_area(tile: Tile, scale: int, width: int, height: int) -> Rect:
    """The document pixels under ``tile`` (output pixels) of a ``width × height`` document
    enlarged ``scale``×: the tile's rectangle divided by the scale, widened to whole pixels."""
    x0, y0 = tile.x // scale, tile.y // scale
    x1 = min(width, -(-(tile.x + tile.w) // scale))
    y1 = min(height, -(-(tile.y + tile.h) // scale))
    return Rect(x0, y0, x1 - x0, y1 - y0)


def _tile_guides(plan: UpscalePlan, tile: Tile, size: Size) -> dict[str, Any]:
    """The regions and controls of ``plan.document`` over ``tile``, at generation ``size``."""
    doc = plan.document
    if doc is None:
        return {}
    area = tile_area(tile, plan.scale, doc.width, doc.height)
    exact = (area.x * plan.scale, area.y * plan.scale, area.w * plan.scale, area.h * plan.scale) == (
        tile.x, tile.y, tile.w, tile.h)
    # planned at the generation size when the tile is whole document pixels, else over the
    # widened area in output pixels and cropped to the tile before scaling to the size
    over = size if exact else Size(area.w * plan.scale, area.h * plan.scale)
    crop = (slice(tile.y - area.y * plan.scale, tile.y - area.y * plan.scale + tile.h),
            slice(tile.x - area.x * plan.scale, tile.x - area.x * plan.scale + tile.w))  # fmt: skip
    regions, _ = plan_regions(doc, area, *plan.prompts, over, include_prompt=plan.include_prompt)
    controls, _ = plan_controls(doc, area, over, plan.control_models)
    lists = plan.wildcards
    seed = plan.template.seed if plan.template is not None else 0
    specs = []
    for r in regions:
        mask = r.mask if exact else resize_mask(np.ascontiguousarray(r.mask[crop]), size)
        texts = [split_tags(resolve_prompt(t, seed, lists)).text for t in (r.prompt, r.negative)]
        specs.append(RegionSpec(mask, texts[0], texts[1]))
    control_specs = tuple(
        c.spec if exact else dataclasses.replace(
            c.spec, image=resize_image(np.ascontiguousarray(c.spec.image[crop]), size))
        for c in controls
    )  # fmt: skip
    return {"regions": tuple(specs), "controls": control_specs}


def tile_request(plan: UpscalePlan, tile: Tile, picture: np.ndarray) -> GenerationRequest:
    """The img2img request of one tile of the enlarged ``picture`` (uint8 ``plan.size``),
    with the document's regions and controls over the tile when the plan has a document."""
    assert plan.template is not None and plan.family is not None
    crop = picture[tile.slices]
    size = generation_size(tile.w, tile.h, plan.family)
    return plan.template.replace(
        width=size.width,
        height=size.height,
        seed=tile_seed(plan.template.seed, tile.index),
        init=InitImage(resize_image(crop, size), plan.strength),
        **_tile_guides(plan, tile, size),
    )


def enlarge(picture: np.ndarray, size: Size, super_resolve: SuperResolve | None = None) -> np.ndarray:
    """``picture`` (uint8 RGB) at ``size``: through ``super_resolve`` as many times as
    needed to reach it (at most :data:`MAX_PASSES`), then resized exactly onto it (area
    average when the model overshoots, Lanczos otherwise); Lanczos alone without a model."""
    current = picture
    if super_resolve is not None:
        for _ in range(MAX_PASSES):
            if current.shape[1] >= size.width and current.shape[0] >= size.height:
                break
            larger = super_resolve(current)
            if larger.shape[0] <= current.shape[0] or larger.shape[1] <= current.shape[1]:
                break  # a 1x model: it restores, the resize below enlarges
            current = larger
    return resize_image(current, size)


def refine_tiles(
    picture: np.ndarray,
    plan: UpscalePlan,
    run_tile: RunTile,
    *,
    on_progress: Callable[[UpscaleProgress], None] | None = None,
    cancel: _Flag | None = None,
) -> np.ndarray:
    """Refine ``picture`` (uint8 ``plan.size``) tile by tile; returns the blended picture.

    Raises :class:`CancelledError` when ``cancel`` is set between tiles (the engine stops
    within a step and ``run_tile`` raises it too), and whatever ``run_tile`` raises.
    """
    if not plan.refine:
        raise ValueError("this upscale plan has no refine (no model)")
    assert plan.grid is not None
    if picture.shape[:2] != (plan.size.height, plan.size.width):
        raise ValueError(f"the picture is {picture.shape[1]}x{picture.shape[0]}, the plan {plan.size}")
    report = on_progress or (lambda _p: None)
    blender = TileBlender(plan.grid)
    count = len(plan.grid)
    for tile in plan.grid:
        if cancel is not None and cancel.is_set():
            raise CancelledError()
        request = tile_request(plan, tile, picture)
        report(UpscaleProgress("refine", tile.index, count, 0, 0))

        def on_step(step: int, total: int, tile: Tile = tile) -> None:
            report(UpscaleProgress("refine", tile.index, count, step, total))

        result = run_tile(request, on_step)
        if result.shape[:2] != (request.height, request.width):
            raise ValueError(f"tile {tile.index}: the run returned {result.shape[1]}x{result.shape[0]}, "
                             f"not {request.width}x{request.height}")  # fmt: skip
        blender.add(tile, resize_image(result[..., :3], Size(tile.w, tile.h)))
    report(UpscaleProgress("refine", count, count, 0, 0))
    return blender.result()


def upscale_picture(
    picture: np.ndarray,
    plan: UpscalePlan,
    *,
    super_resolve: SuperResolve | None = None,
    run_tile: RunTile | None = None,
    on_progress: Callable[[UpscaleProgress], None] | None = None,
    cancel: _Flag | None = None,
) -> np.ndarray:
    """The whole job: enlarge ``picture`` (uint8 RGB ``plan.source``) to ``plan.size``,
    then refine it tile by tile when the plan has a refine and ``run_tile`` is given."""
    if picture.ndim != 3 or picture.shape[2] < 3 or picture.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB picture, got {picture.dtype} {picture.shape}")
    if picture.shape[:2] != (plan.source.height, plan.source.width):
        raise ValueError(f"the picture is {picture.shape[1]}x{picture.shape[0]}, the plan {plan.source}")
    if on_progress is not None:
        on_progress(UpscaleProgress("enlarge"))
    if cancel is not None and cancel.is_set():
        raise CancelledError()
    large = enlarge(np.ascontiguousarray(picture[..., :3]), plan.size, super_resolve)
    if not plan.refine or run_tile is None:
        return large
    return refine_tiles(large, plan, run_tile, on_progress=on_progress, cancel=cancel)
