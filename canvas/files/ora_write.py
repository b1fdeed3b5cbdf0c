"""Writing a :class:`~sfumato.canvas.model.document.Document` as OpenRaster 0.0.6 (.ora).

What the writer puts in the zip (the format is described in :mod:`sfumato.canvas.files.ora`):
``mimetype`` (stored, first), ``stack.xml``, one PNG per pixel layer cropped to its content
(``data/layerNNNN.png``), ``mergedimage.png`` (the flattened picture, with the A1111
``parameters`` text of the recipe) and ``Thumbnails/thumbnail.png``. Layers that are not
part of the picture (masks, regions, control sketches, reference pictures) are written ``visibility="hidden"``
for other programs, with Sfumato's own visibility in ``sfumato:visible``. Attributes of
other programs read from the file are written back.

Writing is atomic (temporary file in the same folder, fsync, rename): a failed save leaves
the previous file as it was and raises :class:`~sfumato.canvas.files.file_errors.SaveError`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
import zipfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sfumato.canvas.files.file_errors import SaveError
from sfumato.canvas.files.imageio import encode_png
from sfumato.canvas.files.ora_archive import ORA_MIMETYPE, ORA_VERSION, write_entry
from sfumato.canvas.files.ora_archive import SFUMATO as _S
from sfumato.canvas.files.recipe_parameters import document_parameters
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import GroupLayer, Layer, PixelLayer, Role, document_offset
from sfumato.canvas.render.composite import flatten
from sfumato.vocabulary.atomic_file import atomic_write

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
SAVE_THREADS = 4  # worker threads for PNG encoding and the flatten when saving
LAYER_PNG_LEVEL = 3  # zlib level for layer PNGs and the merged image: ~2x faster than 6

# Characters XML 1.0 cannot carry, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def save_ora(doc: Document, path: str | Path, backup: bool = False) -> None:
    """Write ``doc`` to ``path`` as OpenRaster 0.0.6, atomically.

    With ``backup``, the previous file becomes ``path~`` when the new one is complete.

    Raises :class:`SaveError` when the file cannot be written; the previous file at
    ``path`` (if any) is then left exactly as it was and no temporary file remains.

    The document must not change while it is being saved (call from the thread that
    owns it). PNG encoding and the flatten run on a few worker threads (Pillow and numpy
    release the GIL), and the layer PNGs are written in order with a bounded number in
    memory at once.
    """
    path = Path(path)
    workers = max(1, min(SAVE_THREADS, os.cpu_count() or 1))
    try:
        writer = _StackWriter(doc.active, size=(doc.width, doc.height))
        image = _image_element(doc)
        root_stack = ET.SubElement(image, "stack")
        for child in doc.root.children:
            root_stack.append(writer.element(child))
        xml = ET.tostring(image, encoding="utf-8", xml_declaration=True)
        parameters = document_parameters(doc)
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="ora-save") as pool,
            atomic_write(path, backup=backup) as handle,
            zipfile.ZipFile(handle, "w") as zf,
        ):
            try:
                merged_future = pool.submit(flatten, doc)
                stamp = time.localtime()[:6]
                write_entry(zf, "mimetype", ORA_MIMETYPE.encode("ascii"), stamp, stored=True)
                write_entry(zf, "stack.xml", xml, stamp, stored=False)
                pending: deque[tuple[str, Future[bytes]]] = deque()
                for src, layer, bounds in writer.jobs:
                    pending.append((src, pool.submit(_layer_png, layer, bounds)))
                    while len(pending) > workers:
                        name, future = pending.popleft()
                        write_entry(zf, name, future.result(), stamp, stored=True)
                while pending:
                    name, future = pending.popleft()
                    write_entry(zf, name, future.result(), stamp, stored=True)
                merged = merged_future.result()
                text = {"parameters": parameters} if parameters else None
                merged_png = encode_png(merged, text=text, compress_level=LAYER_PNG_LEVEL)
                write_entry(zf, "mergedimage.png", merged_png, stamp, stored=True)
                write_entry(zf, "Thumbnails/thumbnail.png", _thumbnail_png(merged), stamp, stored=True)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    except SaveError as exc:
        raise SaveError(path, f"could not save: {exc.problem}") from exc
    except (OSError, zipfile.LargeZipFile) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SaveError(path, f"could not save: {reason}") from exc
    log.info("saved %s (%d layers)", path, sum(1 for _ in doc.layers()))


def _layer_png(layer: PixelLayer, bounds: Rect) -> bytes:
    """The PNG of ``layer``'s pixels over ``bounds`` (surface space; 1×1 clear if empty)."""
    pixels = np.zeros((1, 1, 4), np.uint8) if bounds.empty else layer.surface.read(bounds)
    return encode_png(pixels, compress_level=LAYER_PNG_LEVEL)


def _thumbnail_png(merged: np.ndarray) -> bytes:
    image = Image.fromarray(merged, "RGBA")
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    return encode_png(np.asarray(image))


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (control characters)."""
    clean = _XML_INVALID.sub("", text)
    if clean != text:
        log.warning("dropped %d control character(s) XML cannot store", len(text) - len(clean))
    return clean


def _num(value: float) -> str:
    """Shortest text that reads back as the same float (``1.0`` → ``"1"``)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _image_element(doc: Document) -> ET.Element:
    attrs: dict[str, str] = {"version": ORA_VERSION, "w": str(doc.width), "h": str(doc.height)}
    recipe = doc.recipe
    if recipe.prompt:
        attrs[_S + "prompt"] = _xml_text(recipe.prompt)
    if recipe.negative:
        attrs[_S + "negative"] = _xml_text(recipe.negative)
    if recipe.model:
        attrs[_S + "model"] = _xml_text(recipe.model)
    if recipe.seed is not None:
        attrs[_S + "seed"] = str(int(recipe.seed))
    if recipe.steps is not None:
        attrs[_S + "steps"] = str(int(recipe.steps))
    if recipe.cfg is not None:
        attrs[_S + "cfg"] = _num(recipe.cfg)
    if recipe.strength is not None:
        attrs[_S + "strength"] = _num(recipe.strength)
    if recipe.sampler:
        attrs[_S + "sampler"] = _xml_text(recipe.sampler)
    if recipe.fill:
        attrs[_S + "fill"] = _xml_text(recipe.fill)
    if recipe.regions_include_prompt is not None:
        attrs[_S + "regions-include-prompt"] = "true" if recipe.regions_include_prompt else "false"
    if recipe.style:
        attrs[_S + "style"] = _xml_text(recipe.style)
    if recipe.style_resolved:
        attrs[_S + "style-resolved"] = _xml_text(json.dumps(recipe.style_resolved, sort_keys=True, ensure_ascii=False))
    _add_extra(attrs, doc.extra_attributes)
    return ET.Element("image", attrs)


def _add_extra(attrs: dict[str, str], extra: dict[str, str]) -> None:
    """Other programs' attributes, written back unless Sfumato writes that name itself."""
    for key, value in extra.items():
        if key not in attrs and not key.startswith(_S) and _valid_attr_name(key):
            attrs[key] = _xml_text(value)


def _valid_attr_name(key: str) -> bool:
    local = key.rsplit("}", 1)[-1]
    return bool(re.fullmatch(r"[A-Za-z_][\w.\-]*", local)) and not key.startswith("xmlns")


@dataclass
class _StackWriter:
    """Builds the stack.xml elements and lists the layer PNGs to write (``jobs``)."""

    active: Layer | None
    jobs: list[tuple[str, PixelLayer, Rect]] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # the canvas, for a pose's canvas_width/canvas_height

    def element(self, layer: Layer) -> ET.Element:
        if isinstance(layer, GroupLayer):
            return self._stack(layer)
        if isinstance(layer, PixelLayer):
            return self._layer(layer)
        raise TypeError(f"cannot save layer type {type(layer).__name__}")

    def _common(self, layer: Layer, x: int, y: int) -> dict[str, str]:
        attrs = {
            "name": _xml_text(layer.name),
            "x": str(x),
            "y": str(y),
            "opacity": _num(min(max(float(layer.opacity), 0.0), 1.0)),
            "visibility": "visible" if layer.visible else "hidden",
            "composite-op": layer.blend.value,
        }
        if layer.locked:
            attrs["edit-locked"] = "true"
        if self.active is layer:
            attrs["selected"] = "true"
        _add_extra(attrs, layer.extra_attributes)
        return attrs

    def _stack(self, group: GroupLayer) -> ET.Element:
        attrs = self._common(group, group.x, group.y)
        attrs["isolation"] = "isolate"
        element = ET.Element("stack", attrs)
        for child in group.children:
            element.append(self.element(child))
        return element

    def _layer(self, layer: PixelLayer) -> ET.Element:
        bounds = layer.surface.bounds()
        if bounds.empty:
            x, y = layer.x, layer.y
        else:
            x, y = layer.x + bounds.x, layer.y + bounds.y
        src = f"data/layer{len(self.jobs) + 1:04d}.png"
        self.jobs.append((src, layer, bounds))
        attrs = {"src": src, **self._common(layer, x, y)}
        if not layer.role.is_image:
            # Masks, regions, control sketches and reference pictures are not part of the picture: other
            # programs must not draw them over it (a region is an opaque block), so they
            # are hidden there; Sfumato keeps its own visibility in sfumato:visible.
            attrs["visibility"] = "hidden"
            attrs[_S + "visible"] = "true" if layer.visible else "false"
        attrs.update(_role_attributes(layer, self.size))
        return ET.Element("layer", attrs)


def _role_attributes(layer: PixelLayer, size: tuple[int, int] = (0, 0)) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if layer.role is not Role.PAINT:
        attrs[_S + "role"] = layer.role.value
    if layer.prompt:
        attrs[_S + "prompt"] = _xml_text(layer.prompt)
    if layer.negative:
        attrs[_S + "negative"] = _xml_text(layer.negative)
    if layer.control is not None:
        attrs[_S + "control"] = layer.control.kind.value
        attrs[_S + "strength"] = _num(layer.control.strength)
        attrs[_S + "start"] = _num(layer.control.start)
        attrs[_S + "end"] = _num(layer.control.end)
        if layer.control.pose is not None:
            # OpenPose JSON in document pixels (the model keeps layer pixels)
            dx, dy = document_offset(layer)
            attrs[_S + "pose"] = layer.control.pose.to_text(size[0], size[1], dx, dy)
        if layer.control.source is not None:
            attrs[_S + "source"] = layer.control.source.value
    if layer.reference is not None:
        attrs[_S + "reference"] = layer.reference.kind.value
        attrs[_S + "strength"] = _num(layer.reference.strength)
        attrs[_S + "start"] = _num(layer.reference.start)
        attrs[_S + "end"] = _num(layer.reference.end)
    if layer.generation is not None:
        try:
            text = json.dumps(
                layer.generation, ensure_ascii=False, sort_keys=True, allow_nan=False, default=_json_value
            )
        except (TypeError, ValueError) as exc:
            raise SaveError(
                None, f"layer {layer.name!r}: its generation data cannot be stored as JSON ({exc})"
            ) from exc
        attrs[_S + "generation"] = _xml_text(text)
    return attrs


def _json_value(value: Any) -> Any:
    """JSON for the non-JSON values a summary may carry (numpy scalars, enums, paths)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
