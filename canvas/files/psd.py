"""Photoshop (.psd) through psd-tools: layered export, and a best-effort import.

PSD has no place for Sfumato's AI recipe, so it is an exchange format for other
programs, not a second native format (use OpenRaster for that).

Export (:func:`save_psd`) writes:

- every layer and group, in order, with its name, opacity, visibility, lock and blend
  mode; pixel layers cropped to their content at their document position (PSD layers
  are positioned in document space, so group offsets are folded into the layers);
- groups as isolated groups (blend mode ``normal`` rather than Photoshop's default
  ``pass through``), as Sfumato composites them;
- ``inpaint-mask``, ``region``, ``control`` and ``reference`` layers hidden (they are not part of the
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
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sfumato.canvas.files.file_errors import (
    CorruptImageError,
    FileFormatError,
    ImageTooLargeError,
    SaveError,
    UnsupportedFormatError,
)
from sfumato.canvas.files.imageio import check_dimensions
from sfumato.canvas.files.limits import Budget, kept_area, memory_budget, open_regular, tile_bytes
from sfumato.canvas.files.psd_records import group_depth
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, document_offset
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.vocabulary.atomic_file import atomic_write

log = logging.getLogger(__name__)

__all__ = ["load_psd", "save_psd"]


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


MAX_DEPTH = 64  # nesting of groups, as for OpenRaster
PSD_DECODE_BYTES_PER_PIXEL = 44
"""What decoding one PSD layer takes per pixel of its bounding box, for a while:
psd-tools' float32 RGBA picture (16 bytes) and its per-channel arrays while stacking them
(16), the channels' decompressed bytes (up to 8 at 16 bits) and the RGBA result (4)."""


def load_psd(path: str | Path) -> Document:
    """Read a Photoshop file (.psd or .psb) into a new document (see the module docstring).

    Before psd-tools decodes any pixel: the file must be a regular file, the sections it
    declares must fit in it (a file cut inside its layers is refused; one cut inside the
    merged image it ends with opens, with a warning, since the layers are intact), groups
    may nest :data:`MAX_DEPTH` deep (counted from the layer records by
    :mod:`sfumato.canvas.files.psd_records`, so a file nested 10,000 deep is refused at once),
    and what the layers will cost is checked against the memory budget
    (:mod:`sfumato.canvas.files.limits`). psd-tools' own warnings and log records become one
    labelled warning.
    """
    import struct

    path = Path(path)
    with open_regular(path) as handle:
        header = handle.read(26)
        size = os.fstat(handle.fileno()).st_size
        if len(header) < 26 or not header.startswith(b"8BPS"):
            raise UnsupportedFormatError(path, "is not a Photoshop (PSD) file")
        version = struct.unpack(">H", header[4:6])[0]
        height, width = struct.unpack(">II", header[14:22])
        check_dimensions(width, height, path=path, what="the image")
        if version not in (1, 2):
            raise CorruptImageError(path, f"has PSD version {version}; expected 1 (.psd) or 2 (.psb)")
        _check_sections(handle, path, size, version)
        depth = group_depth(handle, version, size)  # from the records, before psd-tools builds them
        if depth is not None and depth > MAX_DEPTH:
            raise _too_deep(path)
    problems = _LibraryProblems()
    try:
        with problems:
            doc = _read(path, size, problems)
    except FileFormatError:
        raise
    except (ParseLimitErrorType(), RecursionError) as exc:
        raise ImageTooLargeError(path, f"is beyond the safety limits ({exc})") from exc
    except (ValueError, OSError, EOFError, struct.error, KeyError, IndexError, TypeError, AssertionError) as exc:
        raise CorruptImageError(path, f"cannot be read as a Photoshop file ({type(exc).__name__}: {exc})") from exc
    problems.report(path)
    return doc


def _too_deep(path: Path) -> ImageTooLargeError:
    return ImageTooLargeError(path, f"its layer groups are nested deeper than {MAX_DEPTH} levels")


def ParseLimitErrorType() -> type[Exception]:  # noqa: N802 - used in an except clause
    from psd_tools import ParseLimitError

    return ParseLimitError  # type: ignore[no-any-return]


def _read(path: Path, size: int, problems: _LibraryProblems) -> Document:
    from psd_tools import ParseLimits, PSDImage

    psd = PSDImage.open(
        path,
        max_alloc_bytes=memory_budget(),
        parse_limits=ParseLimits(max_nesting_depth=64),
    )
    doc = Document(psd.width, psd.height)
    reader = _PsdReader(path, kept_area(psd.width, psd.height))
    reader.plan(psd, size)
    with doc.changed.block():
        reader.children(psd, doc.root)
    return doc


def _check_sections(handle: Any, path: Path, size: int, version: int) -> None:
    """The section lengths the file declares must fit in it (truncation, before parsing)."""
    import struct

    position = 26
    for name, width in (("colour data", 4), ("image resources", 4), ("layers", 4 if version == 1 else 8)):
        handle.seek(position)
        raw = handle.read(width)
        if len(raw) < width:
            raise CorruptImageError(
                path, f"is truncated: it ends at byte {size:,}, inside its {name} section header"
            )
        length = struct.unpack(">I" if width == 4 else ">Q", raw)[0]
        position += width + length
        if position > size:
            raise CorruptImageError(
                path,
                f"is truncated: its {name} section declares {length:,} bytes, but the file ends "
                f"{position - size:,} bytes short of that ({size:,} bytes in all)",
            )
    if size - position < 2:
        log.warning("%s: the file is truncated: its merged image is missing (the layers are intact)", path)
        return
    handle.seek(position)
    compression = struct.unpack(">H", handle.read(2))[0]
    channels, height, width, depth = struct.unpack(">HIIH", _header_fields(handle))
    rows = channels * height
    if compression == 0:
        needed = rows * ((width * depth + 7) // 8)
    elif compression == 1:
        count_width = 2 if version == 1 else 4
        handle.seek(position + 2)
        table = handle.read(rows * count_width)
        if len(table) < rows * count_width:
            needed = 2 + rows * count_width
        else:
            counts = struct.unpack(f">{rows}{'H' if count_width == 2 else 'I'}", table)
            needed = rows * count_width + sum(counts)
    else:
        return  # ZIP: its length shows only when inflated
    if size - position - 2 < needed:
        log.warning(
            "%s: the file is truncated: its merged image lacks %s bytes (the layers are intact; "
            "Sfumato does not use the merged image)", path, f"{needed - (size - position - 2):,}",
        )


def _header_fields(handle: Any) -> bytes:
    handle.seek(12)
    channels = handle.read(2)
    handle.seek(14)
    sizes = handle.read(8)
    depth = handle.read(2)
    return channels + sizes + depth


class _LibraryProblems:
    """Collects psd-tools' warnings and log records while a file is read, to report them
    as one labelled warning (instead of raw ``PSDDecompressionWarning`` lines, or psd-tools'
    ``error`` records that would read as the command failing)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._catch = warnings.catch_warnings(record=True)
        self._caught: list[warnings.WarningMessage] | None = None
        self._handler = _Collect(self.messages)
        self._logger = logging.getLogger("psd_tools")
        self._propagate = True

    def __enter__(self) -> _LibraryProblems:
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always")
        self._logger.addHandler(self._handler)
        self._propagate = self._logger.propagate
        self._logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.propagate = self._propagate
        self._catch.__exit__(None, None, None)
        for item in self._caught or []:
            self.messages.append(" ".join(str(item.message).split()))

    def report(self, path: Path) -> None:
        if not self.messages:
            return
        unique = list(dict.fromkeys(self.messages))
        more = f" (and {len(unique) - 1} more)" if len(unique) > 1 else ""
        log.warning("%s: parts of the file could not be read and were left out or blank: %s%s",
                    path, unique[0][:200], more)


class _Collect(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


class _PsdReader:
    def __init__(self, path: Path, keep: Rect) -> None:
        self.path = path
        self.keep = keep

    def warn(self, layer: Any, problem: str) -> None:
        log.warning("%s: layer %r: %s", self.path, getattr(layer, "name", "?"), problem)

    def plan(self, psd: Any, size: int) -> None:
        """Check nesting and add up what the layers will cost, decoding nothing."""
        budget = Budget(self.path)
        budget.peak_decode = size  # psd-tools holds the file's compressed data while reading
        stack: list[tuple[Any, int]] = [(psd, 0)]
        while stack:
            node, depth = stack.pop()
            for item in list(node):
                if item.is_group():
                    if depth + 1 > MAX_DEPTH:
                        raise _too_deep(self.path)
                    stack.append((item, depth + 1))
                    continue
                if item.kind in _NO_PIXELS or not item.has_pixels():
                    continue
                left, top, right, bottom = item.bbox
                check_dimensions(right - left, bottom - top, path=self.path, what=f"layer {item.name!r}")
                kept = tile_bytes(Rect(left, top, right - left, bottom - top).intersect(self.keep))
                budget.add(kept, size + (right - left) * (bottom - top) * PSD_DECODE_BYTES_PER_PIXEL)
                budget.check()
        budget.check()

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
        pixels = self.rgba(item)
        area = Rect(left, top, right - left, bottom - top)
        kept = area.intersect(self.keep)
        if kept != area:
            self.warn(item, "it reaches more than a canvas size (at least 2,048 px) beyond the canvas; "
                            "the pixels out there are dropped")
        surface = TiledSurface()
        if not kept.empty:
            surface.write(kept.x, kept.y, pixels[kept.slices(left, top)])
        return PixelLayer(str(item.name), surface, **props)

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
        values = np.asarray(values, dtype=np.float32)
        # 32-bit files hold any float: no NaN, no overflow when scaled to 0..255.
        np.nan_to_num(values, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(values, 0.0, 1.0, out=values)
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
                mask_values = np.nan_to_num(np.asarray(mask, dtype=np.float32)[..., 0], nan=1.0)
                values[..., 3] *= np.clip(mask_values, 0.0, 1.0)
            else:
                self.warn(item, "its layer mask does not line up with its pixels; mask ignored")
        values *= 255.0
        np.rint(values, out=values)
        return values.astype(np.uint8)
