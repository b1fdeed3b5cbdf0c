"""Reference pictures from reference layers: "paint in the style of this", "keep this face".

For each visible ``reference`` layer, top first:

1. its own pixels over its own bounds (wherever they lie, inside the canvas or not),
   the layer composited alone — its group's blend and opacity do not apply, nor its own
   opacity (that is how the layer shows in the window; ``strength`` is how much it
   counts) — with alpha flattened onto **white**, as control sketches are: a cut-out
   face or a painted swatch sits on blank paper, as the artist sees it on a new canvas;
2. scaled, keeping its aspect ratio, to fit the family's native pixel budget
   (``native²``: a larger picture is shrunk, a smaller one is kept, never enlarged — the
   model learns nothing from upscaled pixels and each pixel costs tokens), each side at
   most ``max_side`` and a multiple of the family's size multiple (16 for FLUX.2 Klein,
   whose engine refuses other sides) — :func:`reference_size`;
3. with the layer's kind, strength and start/end, and, when the layer lies inside a
   **region's group** (the nearest group above it, the root excepted, that directly holds
   region layers), that region's mask at the request size (the planned mask: upper
   regions already cut out; several regions in the group: their union). A reference
   whose group's regions are all hidden or dropped applies nowhere and is skipped.

A reference layer with no pixels is skipped (with a note); a hidden one is ignored.

**What a family honours.** IP-Adapter families (SD 1.x, SDXL) follow the kind, the
strength, the schedule and the region mask. FLUX.2 Klein takes the picture as extra
image tokens and uses it whole: a kind other than ``content``, a strength other than 1,
a start/end other than 0..1 or a region mask changes nothing there. The plan says so in
its notes (the Generation dock shows them), and the request still carries the values, so
the record says what the document asked for. The family says which settings it follows
(:attr:`~sfumato.inference.families.base.Family.reference_settings`; FLUX.1's Redux
follows all but the kind), and :func:`unfollowed_notes` names the rest.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import (
    GroupLayer,
    PixelLayer,
    ReferenceSettings,
    Role,
    document_offset,
)
from sfumato.inference.request import ReferenceImage
from sfumato.planner.capabilities import family_named
from sfumato.planner.errors import ModelCannotError
from sfumato.planner.families import FamilyInfo
from sfumato.planner.layerpixels import layer_rgba, over_white
from sfumato.planner.regions import PlannedRegion
from sfumato.planner.resample import resize_image
from sfumato.planner.sizing import Size
from sfumato.vocabulary.kinds import ReferenceKind

log = logging.getLogger(__name__)

__all__ = [
    "PlannedReference", "plan_references", "reference_group", "reference_size", "unfollowed_notes",
]

@dataclass(frozen=True, eq=False)
class PlannedReference:
    """One reference of the request and where it came from (for display, notes, tests).

    ``region_names`` are the names of the region layers whose mask it carries (empty:
    the whole picture)."""

    spec: ReferenceImage
    layer_name: str
    region_names: tuple[str, ...] = ()


def reference_size(width: int, height: int, family: FamilyInfo) -> Size:
    """The size a ``width`` × ``height`` reference picture is given to ``family`` at.

    The aspect ratio is kept; the picture is shrunk (never enlarged) to at most
    ``native²`` pixels and ``max_side`` a side, then each side is rounded down to a
    multiple of ``family.multiple`` (at least one multiple).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"reference {width}x{height} is empty")
    budget = family.native * family.native
    scale = min(1.0, math.sqrt(budget / (width * height)), family.max_side / max(width, height))
    m = family.multiple
    w = max(m, int(width * scale) // m * m)
    h = max(m, int(height * scale) // m * m)
    return Size(w, h)


def reference_group(layer: PixelLayer) -> GroupLayer | None:
    """The region's group ``layer`` lies in: the nearest group above it (the document's
    root excepted) that directly holds region layers; ``None`` when there is none (the
    reference applies to the whole picture)."""
    for group in layer.ancestors():
        if group.parent is None:  # the root
            return None
        if any(isinstance(c, PixelLayer) and c.role is Role.REGION for c in group.children):
            return group
    return None


def _picture(layer: PixelLayer) -> np.ndarray | None:
    """The layer's pixels over its own document bounds, on white (RGB uint8), or ``None``
    when it has none."""
    bounds = layer.document_bounds()
    if bounds.empty:
        return None
    crop = layer_rgba(layer, bounds)
    if not crop[..., 3].any():
        return None
    return over_white(crop)


#: Sized reference pictures by the tiles they were made from. Live mode plans a frame
#: after every stroke, and a reference nobody touched gives the same picture each time:
#: a 4000×3000 photo costs 150–200 ms to read, flatten and shrink (measured), a cache hit
#: nothing. Tiles are shared copy-on-write and replaced (never written) once shared, so
#: the identities of a layer's frozen tile arrays name its pixels; each entry keeps those
#: arrays alive, so an identity cannot be reused while it is cached.
_CACHE_SIZE = 4
_cache: OrderedDict[tuple[Any, ...], tuple[tuple[np.ndarray, ...], np.ndarray | None]] = OrderedDict()
_cache_lock = threading.Lock()


def _sized_picture(layer: PixelLayer, family: FamilyInfo) -> np.ndarray | None:
    """The layer's picture on white at :func:`reference_size` for ``family`` (or ``None``
    when it has no pixels), computed once per distinct pixels (see :data:`_cache`)."""
    surface = layer.surface
    keys = sorted(surface.tile_keys())
    tiles = tuple(t for t in (surface.frozen_tile(k) for k in keys) if t is not None)
    key = (
        tuple(keys), tuple(id(t) for t in tiles), document_offset(layer),
        family.native, family.max_side, family.multiple,
    )
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return None if hit[1] is None else hit[1].copy()
    picture = _picture(layer)
    if picture is not None:
        h, w = picture.shape[:2]
        picture = np.ascontiguousarray(resize_image(picture, reference_size(w, h, family)))
    with _cache_lock:
        _cache[key] = (tiles, None if picture is None else picture.copy())
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return picture


def _check_adapters(references: list[PlannedReference], family_name: str) -> None:
    """Raise :class:`ModelCannotError` before anything runs when a family that reads
    references through an adapter (IP-Adapter: SD 1.x, SDXL; Redux: FLUX.1) has none
    installed for a kind the references ask for, saying what to put where."""
    family = family_named(family_name)
    if not references or family is None or family.reference_adapter not in ("ip-adapter", "redux"):
        return
    from sfumato.inference.catalog import find_reference_adapter

    if family.reference_adapter == "redux":
        if find_reference_adapter(family.name, None) is None:
            raise ModelCannotError(
                f"{family.label} reads reference pictures through FLUX.1 Redux, and none is installed: put "
                "flux1-redux-dev.safetensors in ComfyUI/models/style_models and its SigLIP encoder "
                "sigclip_vision_patch14_384.safetensors in ComfyUI/models/clip_vision (or the "
                "FLUX.1-Redux-dev folder in a models folder added in the settings)"
            )
        return

    for kind in sorted({r.spec.kind for r in references}, key=lambda k: k.value):
        if find_reference_adapter(family.name, kind) is None:
            what = "a face IP-Adapter (ip-adapter-plus-face…)" if kind is ReferenceKind.FACE else "an IP-Adapter"
            raise ModelCannotError(
                f"{family.label} reads reference pictures through {what} for {family.label}, and none "
                "is installed: put the adapter file (e.g. ip-adapter-plus_sd15.safetensors, "
                "ip-adapter-plus_sdxl_vit-h.safetensors) in ComfyUI/models/ipadapter and its CLIP "
                "vision encoder in ComfyUI/models/clip_vision (or a models folder added in the settings)"
            )


def plan_references(
    doc: Document,
    size: Size,
    family: FamilyInfo,
    regions: tuple[PlannedRegion, ...] | list[PlannedRegion] = (),
) -> tuple[list[PlannedReference], list[str]]:
    """The references of ``doc`` for a generation of ``size`` with ``family``, and notes.

    ``regions`` are the planned regions (masks at ``size``, each knowing its layer's id:
    :attr:`PlannedRegion.layer_id`); a reference in a region's group takes their masks.
    """
    notes: list[str] = []
    out: list[PlannedReference] = []
    by_layer = {r.layer_id: r for r in regions if r.layer_id is not None}
    for layer in doc.pixel_layers(Role.REFERENCE):
        if not layer.effectively_visible():
            continue
        settings = layer.reference or ReferenceSettings()
        image = _sized_picture(layer, family)
        if image is None:
            notes.append(f"reference layer {layer.name!r} skipped: it has no pixels")
            continue
        mask: np.ndarray | None = None
        names: tuple[str, ...] = ()
        group = reference_group(layer)
        if group is not None:
            members = [
                c for c in group.children
                if isinstance(c, PixelLayer) and c.role is Role.REGION and c.id in by_layer
            ]
            if not members:
                notes.append(
                    f"reference layer {layer.name!r} skipped: the regions of its group "
                    f"{group.name!r} are hidden or were dropped"
                )
                continue
            mask = np.zeros((size.height, size.width), np.float32)
            for member in members:
                np.maximum(mask, by_layer[member.id].mask, out=mask)
            names = tuple(m.name for m in members)
        out.append(PlannedReference(
            spec=ReferenceImage(
                image=image,
                kind=settings.kind,
                strength=settings.strength,
                start=settings.start,
                end=settings.end,
                mask=mask,
            ),
            layer_name=layer.name,
            region_names=names,
        ))
    notes += unfollowed_notes(out, family.name)
    _check_adapters(out, family.name)
    for note in notes:
        log.info(note)
    return out, notes


def unfollowed_notes(references: list[PlannedReference], family_name: str) -> list[str]:
    """Sentences naming what each of ``references`` sets that the family does not follow
    (:attr:`~sfumato.inference.families.base.Family.reference_settings`: FLUX.2 Klein reads
    the picture whole, FLUX.1's Redux every kind alike); empty when it follows them all."""
    family = family_named(family_name)
    if family is None or not family.takes_references:
        return []
    follows = family.reference_settings
    notes = []
    for ref in references:
        spec = ref.spec
        unused = []
        if "kind" not in follows and spec.kind is not ReferenceKind.CONTENT:
            unused.append(f"its kind ({spec.kind.value})")
        if "strength" not in follows and spec.strength != 1.0:
            unused.append(f"its strength ({spec.strength:g})")
        if "range" not in follows and (spec.start, spec.end) != (0.0, 1.0):
            unused.append(f"its schedule ({spec.start:g}..{spec.end:g})")
        if "region" not in follows and ref.region_names:
            unused.append(f"its region ({', '.join(ref.region_names)})")
        if unused:
            how = "uses the picture whole" if not follows else "reads the whole picture for every kind"
            notes.append(f"reference layer {ref.layer_name!r}: {family.label} {how}; " + ", ".join(unused) + " will not apply")
    return notes
