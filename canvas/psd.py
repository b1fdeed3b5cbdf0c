"""Photoshop (.psd) export through psd-tools: layers, groups, blend modes, opacity.

PSD has no place for Sfumato's AI recipe, so this is an export for other programs, not
a second native format (use OpenRaster for that). What is written:

- every layer and group, in order, with its name, opacity, visibility, lock and blend
  mode; pixel layers cropped to their content at their document position (PSD layers
  are positioned in document space, so group offsets are folded into the layers);
- groups as isolated groups (blend mode ``normal`` rather than Photoshop's default
  ``pass through``), as Sfumato composites them;
- ``inpaint-mask``, ``region`` and ``control`` layers hidden (they are not part of the
  picture), so the PSD's composite matches ``sfumato flatten``;
- a composite image (what viewers without layer support show), computed by psd-tools
  from the layers when saving.

Blend modes map to Photoshop's of the same name; ``plus`` becomes *Linear Dodge (Add)*.
``dst-in``, ``dst-out``, ``src-atop`` and ``dst-atop`` have no Photoshop equivalent and
are written as ``normal`` with a logged warning. Photoshop's soft light, colour dodge
and burn differ slightly from the W3C formulas Sfumato uses, so pixels may differ a
little when Photoshop recomposites. Text from layer names that Photoshop's legacy
Pascal strings cannot hold is kept in the Unicode name block (set after creation, as
psd-tools requires).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sfumato.canvas.atomic_file import atomic_write
from sfumato.canvas.blend import BlendMode
from sfumato.canvas.composite import document_offset
from sfumato.canvas.document import Document
from sfumato.canvas.file_errors import SaveError
from sfumato.canvas.layers import GroupLayer, Layer, PixelLayer

log = logging.getLogger(__name__)

__all__ = ["save_psd"]

_BLEND_NAMES = {
    BlendMode.NORMAL: "NORMAL",
    BlendMode.MULTIPLY: "MULTIPLY",
    BlendMode.SCREEN: "SCREEN",
    BlendMode.OVERLAY: "OVERLAY",
    BlendMode.DARKEN: "DARKEN",
    BlendMode.LIGHTEN: "LIGHTEN",
    BlendMode.COLOR_DODGE: "COLOR_DODGE",
    BlendMode.COLOR_BURN: "COLOR_BURN",
    BlendMode.HARD_LIGHT: "HARD_LIGHT",
    BlendMode.SOFT_LIGHT: "SOFT_LIGHT",
    BlendMode.DIFFERENCE: "DIFFERENCE",
    BlendMode.COLOR: "COLOR",
    BlendMode.LUMINOSITY: "LUMINOSITY",
    BlendMode.HUE: "HUE",
    BlendMode.SATURATION: "SATURATION",
    BlendMode.PLUS: "LINEAR_DODGE",
}


def save_psd(doc: Document, path: str | Path) -> None:
    """Write ``doc`` as an 8-bit RGBA Photoshop file, atomically (see the module docstring).

    Raises :class:`SaveError` when the file cannot be written; a previous file at
    ``path`` is then left as it was.
    """
    from psd_tools import PSDImage

    path = Path(path)
    psd = PSDImage.new("RGBA", (doc.width, doc.height), depth=8)
    _add_children(psd, doc.root.children)
    try:
        with atomic_write(path) as handle:
            psd.save(handle)
    except OSError as exc:
        raise SaveError(path, f"could not save: {exc.strerror or exc}") from exc
    except (ValueError, TypeError, AssertionError) as exc:  # psd-tools refusing a value
        raise SaveError(path, f"could not write the PSD: {exc}") from exc


def _blend(layer: Layer) -> Any:
    from psd_tools.constants import BlendMode as PsdBlend

    name = _BLEND_NAMES.get(layer.blend)
    if name is None:
        log.warning(
            "layer %r: blend mode %s has no Photoshop equivalent; written as normal",
            layer.name, layer.blend.label,
        )
        name = "NORMAL"
    return PsdBlend[name]


def _add_children(parent: Any, children: list[Layer]) -> None:
    # Sfumato lists children top first; psd-tools appends each new layer on top.
    for child in reversed(children):
        opacity = round(min(max(float(child.opacity), 0.0), 1.0) * 255)
        if isinstance(child, GroupLayer):
            group = parent.create_group(name="Group", opacity=opacity, blend_mode=_blend(child))
            _add_children(group, child.children)
            psd_layer = group
            visible = child.visible
        elif isinstance(child, PixelLayer):
            bounds = child.surface.bounds()
            ox, oy = document_offset(child)
            if bounds.empty:
                pixels = np.zeros((1, 1, 4), np.uint8)
                left, top = ox, oy
            else:
                pixels = child.surface.read(bounds)
                left, top = ox + bounds.x, oy + bounds.y
            psd_layer = parent.create_pixel_layer_from_array(
                pixels, name="Layer", top=top, left=left, opacity=opacity, blend_mode=_blend(child)
            )
            visible = child.visible and child.role.is_image
        else:  # pragma: no cover - the model has only these two kinds
            raise TypeError(f"cannot export layer type {type(child).__name__}")
        psd_layer.name = child.name  # after creation: non-MacRoman names crash save() otherwise
        psd_layer.visible = visible
        if child.locked:
            psd_layer.lock()

