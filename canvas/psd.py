"""Photoshop (.psd) through psd-tools: layered export, and a best-effort import.

PSD has no place for Sfumato's AI recipe, so it is an exchange format for other
programs, not a second native format (use OpenRaster for that).

Export (:func:`save_psd`) writes:

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

Import (:func:`load_psd`) reads pixel layers (type, shape and smart-object layers as
their rendered pixels) and groups with names, opacity, visibility, locks, blend modes
and enabled layer masks. What the document model cannot hold is reported with a logged
warning per layer: adjustment and fill layers are skipped, clipping masks and layer
effects are ignored, Photoshop-only blend modes read as normal, and pass-through groups
are read as isolated groups (Sfumato groups always isolate). Like every reader here it
is strict about safety: the header's size is checked before psd-tools parses anything,
psd-tools' own parse and allocation limits are set, and decoded pixels are budgeted.
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
from sfumato.canvas.file_errors import (
    CorruptImageError,
    FileFormatError,
    ImageTooLargeError,
    SaveError,
    UnsupportedFormatError,
)
from sfumato.canvas.imageio import MAX_PIXELS, check_dimensions
from sfumato.canvas.layers import GroupLayer, Layer, PixelLayer
from sfumato.canvas.tiles import TiledSurface

log = logging.getLogger(__name__)

__all__ = ["load_psd", "save_psd"]

MAX_LAYER_PIXELS = 1 << 30  # decoded pixels over all layers, as for OpenRaster

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
            _lock(psd_layer)




def _lock(psd_layer: Any) -> None:
    """Lock everything (Photoshop's padlock). ``Layer.lock()`` of psd-tools 1.26 does not
    persist the flag, so the tagged block is set directly."""
    from psd_tools.constants import ProtectedFlags, Tag

    psd_layer.tagged_blocks.set_data(Tag.PROTECTED_SETTING, int(ProtectedFlags.COMPLETE))


def _is_locked(item: Any) -> bool:
    """Photoshop's full lock (bit 31) or the "lock image pixels" flag (bit 1)."""
    locks = item.locks
    return locks is not None and bool(int(locks.value) & 0x80000002)


# -- import ----------------------------------------------------------------------------------
_FROM_PSD = {psd_name: mode for mode, psd_name in _BLEND_NAMES.items()}
_NO_PIXELS = {"adjustment", "fill", "brightnesscontrast", "curves", "levels", "huesaturation"}


def load_psd(path: str | Path) -> Document:
    """Read a Photoshop file (.psd or .psb) into a new document (see the module docstring)."""
    import struct

    from psd_tools import ParseLimitError, ParseLimits, PSDImage

    path = Path(path)
    try:
        with path.open("rb") as handle:
            header = handle.read(26)
    except FileNotFoundError as exc:
        raise FileFormatError(path, "file not found") from exc
    except OSError as exc:
        raise FileFormatError(path, f"cannot open: {exc.strerror or exc}") from exc
    if len(header) < 26 or not header.startswith(b"8BPS"):
        raise UnsupportedFormatError(path, "is not a Photoshop (PSD) file")
    height, width = struct.unpack(">II", header[14:22])
    check_dimensions(width, height, path=path, what="the image")
    try:
        psd = PSDImage.open(
            path,
            max_alloc_bytes=MAX_PIXELS * 16,  # float32 RGBA of the largest allowed layer
            parse_limits=ParseLimits(max_nesting_depth=64),
        )
        doc = Document(psd.width, psd.height)
        reader = _PsdReader(path)
        with doc.changed.block():
            reader.children(psd, doc.root)
    except FileFormatError:
        raise
    except ParseLimitError as exc:
        raise ImageTooLargeError(path, f"is beyond the safety limits ({exc})") from exc
    except (ValueError, OSError, EOFError, struct.error, KeyError, IndexError, TypeError, AssertionError) as exc:
        raise CorruptImageError(path, f"cannot be read as a Photoshop file ({type(exc).__name__}: {exc})") from exc
    return doc


class _PsdReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.pixels = 0

    def warn(self, layer: Any, problem: str) -> None:
        log.warning("%s: layer %r: %s", self.path, getattr(layer, "name", "?"), problem)

    def children(self, parent: Any, group: GroupLayer) -> None:
        for item in list(parent):  # bottom first in psd-tools
            layer = self.layer(item)
            if layer is not None:
                group.insert(0, layer)

    def layer(self, item: Any) -> Layer | None:
        props = {
            "opacity": min(max(int(item.opacity) / 255.0, 0.0), 1.0),
            "visible": bool(item.visible),
            "blend": self.blend(item),
            "locked": _is_locked(item),
        }
        if item.is_group():
            group = GroupLayer(str(item.name), **props)
            self.children(item, group)
            return group
        if item.kind in _NO_PIXELS or not item.has_pixels():
            self.warn(item, f"{item.kind} layers have no pixels Sfumato can use; skipped")
            return None
        if item.clipping:
            self.warn(item, "clipping masks are not supported; the layer is read unclipped")
        if item.has_effects():
            self.warn(item, "layer effects are not supported; read without them")
        left, top, right, bottom = item.bbox
        check_dimensions(right - left, bottom - top, path=self.path, what=f"layer {item.name!r}")
        self.pixels += (right - left) * (bottom - top)
        if self.pixels > MAX_LAYER_PIXELS:
            raise ImageTooLargeError(self.path, f"the layers hold more than {MAX_LAYER_PIXELS:,} pixels")
        pixels = self.rgba(item)
        return PixelLayer(str(item.name), TiledSurface.from_array(pixels, left, top), **props)

    def blend(self, item: Any) -> BlendMode:
        name = item.blend_mode.name
        if name == "PASS_THROUGH":
            return BlendMode.NORMAL
        mode = _FROM_PSD.get(name)
        if mode is None:
            self.warn(item, f"blend mode {name.lower().replace('_', ' ')} is not supported; read as normal")
            return BlendMode.NORMAL
        return mode

    def rgba(self, item: Any) -> np.ndarray:
        """The layer's pixels over its bbox as straight RGBA uint8, its layer mask applied."""
        values = item.numpy()
        if values is None:
            raise CorruptImageError(self.path, f"layer {item.name!r} has no readable pixels")
        values = np.nan_to_num(np.asarray(values, dtype=np.float32))
        channels = values.shape[2] if values.ndim == 3 else 1
        values = values.reshape(values.shape[0], values.shape[1], channels)
        if channels in (1, 2):
            grey = values[..., :1]
            alpha = values[..., 1:2] if channels == 2 else np.ones_like(grey)
            values = np.concatenate([grey, grey, grey, alpha], axis=2)
        elif channels == 3:
            values = np.concatenate([values, np.ones_like(values[..., :1])], axis=2)
        elif channels != 4:
            image = item.topil()
            if image is None:
                raise CorruptImageError(self.path, f"layer {item.name!r} has no readable pixels")
            values = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        if item.has_mask() and not item.mask.disabled:
            mask = item.numpy("mask")
            if mask is not None and mask.shape[:2] == values.shape[:2]:
                values[..., 3] *= np.clip(np.asarray(mask, dtype=np.float32)[..., 0], 0.0, 1.0)
            else:
                self.warn(item, "its layer mask does not line up with its pixels; mask ignored")
        return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
