"""OpenRaster 0.0.6 (.ora) reading and writing, with Sfumato's AI recipe attributes.

The file is a zip: first entry ``mimetype`` (stored, exactly ``image/openraster``), then
``stack.xml``, one PNG per layer under ``data/``, ``mergedimage.png`` (the flattened
image) and ``Thumbnails/thumbnail.png`` (at most 256 px a side). ``stack.xml`` holds
``<image w h version>`` → one root ``<stack>`` → layers and nested stacks, **top first**.
The AI recipe lives in attributes of the namespace ``urn:sfumato:1`` (prefix
``sfumato``), which Krita, GIMP and MyPaint ignore; the full schema is in
``docs/file-format.md``.

Coordinates: each ``<layer>``'s PNG is cropped to the layer's content; its ``x``/``y``
are the crop's position relative to the enclosing stack (document space at the top
level). On reading, a layer gets ``layer.x = layer.y = 0`` and its pixels are placed at
``(x, y)`` in its surface, so document-space pixels round-trip exactly.

Reading is lenient about what other programs write (missing ``version``, unknown
attributes or composite ops, missing ``x``/``y``/``opacity``; attributes it does not use
are kept and written back) and strict about safety:
every problem raises a :class:`~sfumato.canvas.file_errors.FileFormatError` subclass
that names the file and the problem. Nothing is ever extracted to disk: members are read
by name from the archive into memory, within the size budgets below.

Writing is atomic (temporary file in the same folder, fsync, rename).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn
from xml.parsers import expat

import numpy as np
from PIL import Image
from sfumato.canvas.blend import BlendMode
from sfumato.canvas.composite import flatten
from sfumato.canvas.document import Document, Recipe
from sfumato.canvas.file_errors import (
    BadAttributeError,
    ImageTooLargeError,
    MalformedXmlError,
    MissingEntryError,
    NotAnArchiveError,
    SaveError,
    UnsafePathError,
)
from sfumato.canvas.geometry import Rect
from sfumato.canvas.imageio import (
    MAX_SIDE,
    check_dimensions,
    decode_into_surface,
    encode_png,
    png_decode_bytes,
    png_header,
)
from sfumato.canvas.layers import ControlSettings, GroupLayer, Layer, PixelLayer, Role
from sfumato.canvas.limits import Budget, kept_area, open_regular, tile_bytes
from sfumato.canvas.parameters import (
    CFG_RANGE,
    SEED_RANGE,
    STEPS_RANGE,
    STRENGTH_RANGE,
    document_parameters,
)
from sfumato.canvas.tiles import TiledSurface
from sfumato.vocabulary.atomic_file import atomic_write
from sfumato.vocabulary.errors import RequestError
from sfumato.vocabulary.kinds import ControlKind, Sampler

log = logging.getLogger(__name__)

__all__ = [
    "MAX_ENTRIES",
    "MAX_ENTRY_BYTES",
    "MAX_LAYER_PIXELS",
    "MAX_STACK_XML_BYTES",
    "MAX_TOTAL_BYTES",
    "ORA_MIMETYPE",
    "ORA_VERSION",
    "SFUMATO_NS",
    "THUMBNAIL_SIZE",
    "load_ora",
    "save_ora",
]

ORA_MIMETYPE = "image/openraster"
ORA_VERSION = "0.0.6"
SFUMATO_NS = "urn:sfumato:1"
THUMBNAIL_SIZE = 256

# Safety budgets for reading (documented in docs/file-format.md).
MAX_ENTRIES = 10_000  # zip members
MAX_STACK_XML_BYTES = 16 << 20  # 16 MiB of XML
MAX_ENTRY_BYTES = 1 << 30  # one member, uncompressed
MAX_TOTAL_BYTES = 4 << 30  # all members we read, uncompressed
MAX_LAYER_PIXELS = 1 << 30  # pixels over all layers, counted per use (the memory budget rules first)
MAX_DEPTH = 64  # nesting of stacks
MAX_ELEMENTS = 20_000  # XML elements in stack.xml
MAX_OFFSET = 1 << 24  # |x|, |y| of a layer

SAVE_THREADS = 4  # worker threads for PNG encoding and the flatten when saving
LAYER_PNG_LEVEL = 3  # zlib level for layer PNGs and the merged image: ~2x faster than 6

_S = "{" + SFUMATO_NS + "}"
ET.register_namespace("sfumato", SFUMATO_NS)

_ENTRY_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)
_NORMAL_SPELLINGS = {"", "svg:src-over", "svg:normal", "svg:src_over"}
_DRIVE = re.compile(r"^[A-Za-z]:")
# Characters XML 1.0 cannot carry, even escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# =========================================================================================
# Writing
# =========================================================================================
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
        writer = _StackWriter(doc.active)
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
                _write_entry(zf, "mimetype", ORA_MIMETYPE.encode("ascii"), stamp, stored=True)
                _write_entry(zf, "stack.xml", xml, stamp, stored=False)
                pending: deque[tuple[str, Future[bytes]]] = deque()
                for src, layer, bounds in writer.jobs:
                    pending.append((src, pool.submit(_layer_png, layer, bounds)))
                    while len(pending) > workers:
                        name, future = pending.popleft()
                        _write_entry(zf, name, future.result(), stamp, stored=True)
                while pending:
                    name, future = pending.popleft()
                    _write_entry(zf, name, future.result(), stamp, stored=True)
                merged = merged_future.result()
                text = {"parameters": parameters} if parameters else None
                merged_png = encode_png(merged, text=text, compress_level=LAYER_PNG_LEVEL)
                _write_entry(zf, "mergedimage.png", merged_png, stamp, stored=True)
                _write_entry(zf, "Thumbnails/thumbnail.png", _thumbnail_png(merged), stamp, stored=True)
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


def _write_entry(
    zf: zipfile.ZipFile, name: str, data: bytes, stamp: tuple[int, ...], *, stored: bool
) -> None:
    info = zipfile.ZipInfo(name, date_time=stamp)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


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
    if recipe.regions_include_prompt is not None:
        attrs[_S + "regions-include-prompt"] = "true" if recipe.regions_include_prompt else "false"
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
            # Masks, regions and control sketches are not part of the picture: other
            # programs must not draw them over it (a region is an opaque block), so they
            # are hidden there; Sfumato keeps its own visibility in sfumato:visible.
            attrs["visibility"] = "hidden"
            attrs[_S + "visible"] = "true" if layer.visible else "false"
        attrs.update(_role_attributes(layer))
        return ET.Element("layer", attrs)


def _role_attributes(layer: PixelLayer) -> dict[str, str]:
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


# =========================================================================================
# Reading
# =========================================================================================
def load_ora(path: str | Path, *, strict: bool = True) -> Document:
    """Read an OpenRaster file into a :class:`Document`.

    ``strict`` concerns only Sfumato's own ``sfumato:`` attributes: a value that is not
    valid (``sfumato:steps="many"``, an unknown control kind, broken generation JSON)
    raises :class:`BadAttributeError` when ``strict`` is true, and is dropped with a
    logged warning when it is false (so a window can still open the pixels). Safety
    problems always raise, whatever ``strict`` says.
    """
    path = Path(path)
    handle = open_regular(path)  # a named pipe or a device is refused, never waited on
    try:
        zf = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        handle.close()
        raise NotAnArchiveError(
            path,
            "is not an OpenRaster file: it is not a zip archive, or it is truncated or "
            f"damaged ({exc})",
        ) from exc
    with handle, zf:
        reader = _Reader(path, zf, strict)
        return reader.read()


class _FatalXml(Exception):
    """Raised from inside expat callbacks to stop parsing."""


@dataclass
class _Reader:
    path: Path
    zf: zipfile.ZipFile
    strict: bool
    bytes_read: int = 0
    pixels_read: int = 0
    active: Layer | None = None
    layer_count: int = 0
    entries: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    headers: dict[str, tuple[int, int, int, int] | None] = field(default_factory=dict)
    keep: Rect = field(default_factory=lambda: Rect(0, 0, 0, 0))

    # -- archive -------------------------------------------------------------------------
    def read(self) -> Document:
        self._check_entries()
        self._check_mimetype()
        if "stack.xml" not in self.entries:
            raise MissingEntryError(
                self.path, "has no stack.xml, so it is not an OpenRaster file (or it is damaged)"
            )
        data = self._member("stack.xml", limit=MAX_STACK_XML_BYTES)
        image = _parse_xml(data, self.path)
        return self._document(image)

    def _check_entries(self) -> None:
        infos = self.zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ImageTooLargeError(
                self.path, f"has {len(infos)} zip entries; at most {MAX_ENTRIES} are accepted"
            )
        total = 0
        for info in infos:
            _check_member_name(info.filename, self.path)
            if info.filename in self.entries:
                raise NotAnArchiveError(self.path, f"has two zip entries named {info.filename!r}")
            self.entries[info.filename] = info
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ImageTooLargeError(
                self.path,
                f"unpacks to {total:,} bytes, more than the {MAX_TOTAL_BYTES:,} byte limit "
                "(a zip bomb, or a document too large to open)",
            )

    def _check_mimetype(self) -> None:
        if "mimetype" not in self.entries:
            log.warning("%s has no mimetype entry; reading it anyway", self.path)
            return
        value = self._member("mimetype", limit=1024).decode("ascii", "replace").strip()
        if value != ORA_MIMETYPE:
            raise NotAnArchiveError(
                self.path, f"is a zip archive but not OpenRaster (its mimetype is {value!r})"
            )

    def _member(self, name: str, *, limit: int = MAX_ENTRY_BYTES) -> bytes:
        info = self.entries[name]
        if info.file_size > limit:
            raise ImageTooLargeError(
                self.path, f"entry {name!r} unpacks to {info.file_size:,} bytes (limit {limit:,})"
            )
        if info.flag_bits & 0x1:
            raise NotAnArchiveError(self.path, f"entry {name!r} is encrypted; OpenRaster files are not")
        self.bytes_read += info.file_size
        if self.bytes_read > MAX_TOTAL_BYTES:
            raise ImageTooLargeError(self.path, "the layers unpack to more than the size limit")
        try:
            # ZipExtFile never returns more than the declared file_size and checks the CRC.
            with self.zf.open(info) as member:
                data = member.read(info.file_size + 1)
        except RuntimeError as exc:  # encrypted
            raise NotAnArchiveError(self.path, f"entry {name!r} cannot be read: {exc}") from exc
        except _ENTRY_READ_ERRORS as exc:
            raise NotAnArchiveError(
                self.path, f"entry {name!r} is damaged or truncated ({exc})"
            ) from exc
        if len(data) > info.file_size:  # pragma: no cover - zipfile enforces it
            raise ImageTooLargeError(self.path, f"entry {name!r} is larger than it declares")
        return data

    # -- document ------------------------------------------------------------------------
    def _document(self, image: ET.Element) -> Document:
        if image.tag != "image":
            raise MalformedXmlError(
                self.path, f"stack.xml's root element is <{image.tag}>, expected <image>"
            )
        width = self._dimension(image, "w")
        height = self._dimension(image, "h")
        check_dimensions(width, height, path=self.path, what="the image")
        version = image.get("version")
        if version is None:
            log.info("%s: stack.xml has no version; reading as OpenRaster %s", self.path, ORA_VERSION)
        self.keep = kept_area(width, height)
        doc = Document(width, height)
        doc.recipe = self._recipe(image)
        doc.extra_attributes = _extra(image, ("w", "h", "version"))
        stacks = [child for child in image if child.tag == "stack"]
        if not stacks:
            raise MalformedXmlError(self.path, "stack.xml has no root <stack> inside <image>")
        if len(stacks) > 1:
            log.warning("%s: %d root stacks; using the first", self.path, len(stacks))
        budget = Budget(self.path)
        self._plan(stacks[0], 0, 0, budget)
        budget.check()  # before any layer is decoded
        self.layer_count = 0
        with doc.changed.block():
            self._children(stacks[0], doc.root, depth=1)
        doc.active = self.active
        return doc

    def _plan(self, stack: ET.Element, gx: int, gy: int, budget: Budget) -> None:
        """Add up what the layers will cost (from the PNG headers, per use), decoding nothing.

        ``gx``, ``gy`` are the enclosing groups' offsets (document space).
        """
        for element in stack:
            if element.tag not in ("stack", "layer"):
                continue
            self.layer_count += 1
            name = element.get("name") or f"{'Group' if element.tag == 'stack' else 'Layer'} {self.layer_count}"
            x, y = self._offset(element, "x", name), self._offset(element, "y", name)
            if element.tag == "stack":
                self._plan(element, gx + x, gy + y, budget)
                continue
            src = element.get("src")
            if not src:
                continue
            _check_member_name(src, self.path, what=f"layer {name!r} src")
            if src not in self.entries:
                raise MissingEntryError(self.path, f"layer {name!r} points to {src!r}, which is not in the file")
            header = self._png_header(src)
            if header is None:
                continue  # not a PNG: the decode says so
            width, height, depth, colour = header
            check_dimensions(width, height, path=self.path, what=f"layer {name!r} ({src})")
            self.pixels_read += width * height
            if self.pixels_read > MAX_LAYER_PIXELS:
                raise ImageTooLargeError(
                    self.path, f"the layers hold more than {MAX_LAYER_PIXELS:,} pixels in all (counted per use)"
                )
            kept = Rect(gx + x, gy + y, width, height).intersect(self.keep)
            decode = self.entries[src].file_size + width * height * png_decode_bytes(depth, colour)
            budget.add(tile_bytes(kept), decode)

    def _png_header(self, src: str) -> tuple[int, int, int, int] | None:
        """The IHDR of a layer PNG, read from its first bytes only (cached per entry)."""
        if src not in self.headers:
            info = self.entries[src]
            if info.flag_bits & 0x1:
                raise NotAnArchiveError(self.path, f"entry {src!r} is encrypted; OpenRaster files are not")
            try:
                with self.zf.open(info) as member:
                    head = member.read(33)
            except RuntimeError as exc:  # encrypted
                raise NotAnArchiveError(self.path, f"entry {src!r} cannot be read: {exc}") from exc
            except _ENTRY_READ_ERRORS as exc:
                raise NotAnArchiveError(self.path, f"entry {src!r} is damaged or truncated ({exc})") from exc
            self.headers[src] = png_header(head)
        return self.headers[src]

    def _dimension(self, image: ET.Element, name: str) -> int:
        text = image.get(name)
        if text is None:
            raise MalformedXmlError(self.path, f"<image> has no {name!r} attribute (image size)")
        try:
            value = int(text.strip())
        except ValueError:
            raise MalformedXmlError(
                self.path, f"<image {name}={text!r}> is not a whole number of pixels"
            ) from None
        if value <= 0:
            raise MalformedXmlError(self.path, f"<image {name}={text!r}> must be at least 1")
        if value > MAX_SIDE:
            raise ImageTooLargeError(
                self.path, f"image {name}={value} is beyond the limit of {MAX_SIDE} pixels a side"
            )
        return value

    def _children(self, stack: ET.Element, group: GroupLayer, depth: int, gx: int = 0, gy: int = 0) -> None:
        """Read ``stack``'s children into ``group``; ``gx``, ``gy``: the groups' offsets above."""
        if depth > MAX_DEPTH:
            raise MalformedXmlError(self.path, f"stacks are nested deeper than {MAX_DEPTH} levels")
        for element in stack:
            if element.tag == "stack":
                child: Layer = self._group(element, depth, gx, gy)
            elif element.tag == "layer":
                child = self._pixel_layer(element, gx, gy)
            else:
                log.info("%s: skipping unsupported element <%s>", self.path, element.tag)
                continue
            group.append(child)
            if element.get("selected", "").strip().lower() == "true":
                self.active = child

    def _group(self, element: ET.Element, depth: int, gx: int, gy: int) -> GroupLayer:
        self.layer_count += 1
        group = GroupLayer(element.get("name") or f"Group {self.layer_count}")
        self._common(element, group)
        group.x, group.y = self._offset(element, "x", group.name), self._offset(element, "y", group.name)
        isolation = element.get("isolation")
        if isolation not in (None, "isolate", "auto"):
            log.info("%s: unknown isolation %r; groups always isolate", self.path, isolation)
        self._children(element, group, depth + 1, gx + group.x, gy + group.y)
        return group

    def _pixel_layer(self, element: ET.Element, gx: int, gy: int) -> PixelLayer:
        self.layer_count += 1
        name = element.get("name") or f"Layer {self.layer_count}"
        layer = PixelLayer(name)
        self._common(element, layer)
        self._roles(element, layer)
        own = element.get(_S + "visible")
        if own is not None and not layer.role.is_image:  # see _StackWriter._layer
            layer.visible = own.strip().lower() != "false"
        src = element.get("src")
        if not src:
            log.warning("%s: layer %r has no src; it is read as empty", self.path, name)
            return layer
        x, y = self._offset(element, "x", name), self._offset(element, "y", name)
        layer.surface = self._layer_surface(src, name, x, y, self.keep.translate(-gx, -gy))
        return layer

    def _layer_surface(self, src: str, name: str, x: int, y: int, keep: Rect) -> TiledSurface:
        """The layer PNG decoded at ``(x, y)``, cropped to ``keep`` (surface space)."""
        data = self._member(src)
        what = f"layer {name!r} ({src})"
        header = png_header(data)
        if header is not None and not keep.contains(Rect(x, y, header[0], header[1])):
            log.warning(
                "%s: %s reaches more than %s beyond the canvas; the pixels out there are "
                "dropped", self.path, what, "a canvas size (at least 2,048 px)",
            )
        return decode_into_surface(data, path=self.path, what=what, x=x, y=y, keep=keep)

    # -- attributes ----------------------------------------------------------------------
    def _common(self, element: ET.Element, layer: Layer) -> None:
        layer.extra_attributes = _extra(element, _LAYER_ATTRIBUTES)
        layer.opacity = self._opacity(element)
        layer.visible = element.get("visibility", "visible").strip().lower() != "hidden"
        layer.locked = element.get("edit-locked", "").strip().lower() == "true"
        op = element.get("composite-op")
        layer.blend = BlendMode.from_ora(op)
        if layer.blend is BlendMode.NORMAL and (op or "").strip() not in _NORMAL_SPELLINGS:
            log.warning(
                "%s: layer %r has unknown composite-op %r; using normal", self.path, layer.name, op
            )

    def _opacity(self, element: ET.Element) -> float:
        text = element.get("opacity")
        if text is None:
            return 1.0
        try:
            value = float(text.strip())
        except ValueError:
            log.warning("%s: opacity %r is not a number; using 1", self.path, text)
            return 1.0
        if math.isnan(value):
            log.warning("%s: opacity is NaN; using 1", self.path)
            return 1.0
        if not 0.0 <= value <= 1.0:
            log.warning("%s: opacity %r is outside 0..1; clamped", self.path, text)
        return min(max(value, 0.0), 1.0)

    def _offset(self, element: ET.Element, name: str, layer: str) -> int:
        text = element.get(name)
        if text is None:
            return 0
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or abs(value) > MAX_OFFSET:
            raise MalformedXmlError(
                self.path,
                f"{'group' if element.tag == 'stack' else 'layer'} {layer!r}: <{element.tag}> has {name}={text!r}; "
                f"expected a whole number of pixels within ±{MAX_OFFSET}",
            )
        return round(value)

    def _roles(self, element: ET.Element, layer: PixelLayer) -> None:
        role_text = element.get(_S + "role")
        if role_text is not None:
            try:
                layer.role = Role.parse(role_text)
            except ValueError:
                log.warning(
                    "%s: layer %r has unknown sfumato:role %r; read as a paint layer",
                    self.path, layer.name, role_text,
                )
                layer.role = Role.PAINT
        layer.prompt = element.get(_S + "prompt", "")
        layer.negative = element.get(_S + "negative", "")
        where = f"layer {layer.name!r}"
        control_text = element.get(_S + "control")
        if control_text is not None or layer.role is Role.CONTROL:
            kind = ControlKind.SCRIBBLE
            if control_text is not None:
                try:
                    kind = ControlKind.parse(control_text)
                except RequestError as exc:
                    self._bad(f"{where}: sfumato:control: {exc}")
            strength = self._float(element, "strength", where, 1.0, 0.0, 2.0)
            start = self._float(element, "start", where, 0.0, 0.0, 1.0)
            end = self._float(element, "end", where, 1.0, 0.0, 1.0)
            if start >= end:
                self._bad(f"{where}: sfumato:start ({start}) must be below sfumato:end ({end})")
                start, end = 0.0, 1.0
            layer.control = ControlSettings(kind, strength, start, end)
        generation = element.get(_S + "generation")
        if generation is not None:
            layer.generation = self._generation(generation, where)

    def _generation(self, text: str, where: str) -> dict[str, Any] | None:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self._bad(f"{where}: sfumato:generation is not valid JSON ({exc})")
            return None
        if not isinstance(value, dict):
            self._bad(f"{where}: sfumato:generation must be a JSON object")
            return None
        return value

    def _recipe(self, image: ET.Element) -> Recipe:
        where = "<image>"
        recipe = Recipe(
            prompt=image.get(_S + "prompt", ""),
            negative=image.get(_S + "negative", ""),
            model=image.get(_S + "model") or None,
        )
        if (text := image.get(_S + "seed")) is not None:
            recipe.seed = self._int(text, "seed", where, *SEED_RANGE)
        if (text := image.get(_S + "steps")) is not None:
            recipe.steps = self._int(text, "steps", where, *STEPS_RANGE)
        if image.get(_S + "cfg") is not None:
            recipe.cfg = self._float(image, "cfg", where, None, *CFG_RANGE)
        if image.get(_S + "strength") is not None:
            recipe.strength = self._float(image, "strength", where, None, *STRENGTH_RANGE)
        if (text := image.get(_S + "sampler")) is not None:
            try:
                recipe.sampler = Sampler.from_label(text).value
            except RequestError as exc:
                self._bad(f"{where}: sfumato:sampler: {exc}")
        if (text := image.get(_S + "regions-include-prompt")) is not None:
            flag = text.strip().lower()
            if flag in ("true", "false"):
                recipe.regions_include_prompt = flag == "true"
            else:
                self._bad(f"{where}: sfumato:regions-include-prompt={text!r} is neither true nor false")
        return recipe

    def _int(self, text: str, name: str, where: str, lo: int, hi: int) -> int | None:
        try:
            value = int(text.strip())
        except ValueError:
            self._bad(f"{where}: sfumato:{name}={text!r} is not a whole number")
            return None
        if not lo <= value <= hi:
            self._bad(f"{where}: sfumato:{name}={value} is outside {lo}..{hi}")
            return None
        return value

    def _float(
        self, element: ET.Element, name: str, where: str, default: Any, lo: float, hi: float
    ) -> Any:
        text = element.get(_S + name)
        if text is None:
            return default
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self._bad(f"{where}: sfumato:{name}={text!r} is not a finite number")
            return default
        if not lo <= value <= hi:
            log.warning("%s: %s: sfumato:%s=%s is outside %g..%g; clamped", self.path, where, name, text, lo, hi)
            value = min(max(value, lo), hi)
        return value

    def _bad(self, problem: str) -> None:
        if self.strict:
            raise BadAttributeError(self.path, problem)
        log.warning("%s: %s (ignored)", self.path, problem)


# -- names and XML -------------------------------------------------------------------------
#: the ``<layer>``/``<stack>`` attributes Sfumato reads and writes itself
_LAYER_ATTRIBUTES = (
    "name", "src", "x", "y", "opacity", "visibility", "composite-op", "edit-locked",
    "selected", "isolation",
)


def _extra(element: ET.Element, known: tuple[str, ...]) -> dict[str, str]:
    """``element``'s attributes that are neither ``known`` nor Sfumato's own."""
    return {k: v for k, v in element.attrib.items() if k not in known and not k.startswith(_S)}


def _check_member_name(name: str, path: Path, what: str = "zip entry") -> None:
    """Refuse names that could escape a folder if anyone ever extracted them."""
    problem = None
    if not name:
        problem = "is empty"
    elif "\x00" in name:
        problem = "contains a NUL character"
    elif "\\" in name:
        problem = "contains a backslash"
    elif name.startswith("/"):
        problem = "is an absolute path"
    elif _DRIVE.match(name):
        problem = "starts with a drive letter"
    elif ".." in name.split("/"):
        problem = "contains '..'"
    if problem is not None:
        raise UnsafePathError(path, f"{what} {name!r} {problem}; refusing to read this file")


def _parse_xml(data: bytes, path: Path) -> ET.Element:
    """Parse stack.xml with expat, refusing DTDs and entity declarations outright.

    Equivalent to defusedxml's protections for our needs: no DOCTYPE (so no entity
    expansion, billion laughs or external entities), bounded size, depth and element count.

    A file that uses a namespace prefix without declaring it (hand-written files often
    forget ``xmlns:sfumato``) is read again without namespace processing, with the
    ``sfumato:`` prefix mapped to its namespace and a warning.
    """
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MalformedXmlError(
            path, "stack.xml declares a DTD or entities, which are refused for safety"
        )
    try:
        return _parse_xml_once(data, namespaces=True)
    except _FatalXml as exc:
        raise MalformedXmlError(path, str(exc)) from None
    except expat.ExpatError as exc:
        if exc.code != expat.errors.codes[expat.errors.XML_ERROR_UNBOUND_PREFIX]:
            raise MalformedXmlError(path, f"stack.xml is not well-formed XML ({exc})") from None
        log.warning(
            "%s: stack.xml uses a namespace prefix it does not declare (%s); reading "
            "'sfumato:' as %s. Declare xmlns:sfumato=\"%s\" on <image>.",
            path, exc, SFUMATO_NS, SFUMATO_NS,
        )
    except (ValueError, AssertionError, LookupError) as exc:  # unbalanced input, unknown encoding
        raise MalformedXmlError(path, f"stack.xml is not well-formed XML ({exc})") from None
    try:
        return _parse_xml_once(data, namespaces=False)
    except _FatalXml as exc:
        raise MalformedXmlError(path, str(exc)) from None
    except (expat.ExpatError, ValueError, AssertionError, LookupError) as exc:
        raise MalformedXmlError(path, f"stack.xml is not well-formed XML ({exc})") from None


def _parse_xml_once(data: bytes, *, namespaces: bool) -> ET.Element:
    builder = ET.TreeBuilder()
    state = {"depth": 0, "count": 0}
    name = _clark if namespaces else _prefixed

    def refuse(*_: object) -> NoReturn:
        raise _FatalXml("stack.xml declares a DTD or entities, which are refused for safety")

    def start(tag: str, attrs: dict[str, str]) -> None:
        state["depth"] += 1
        state["count"] += 1
        if state["depth"] > MAX_DEPTH + 2:
            raise _FatalXml(f"stack.xml is nested deeper than {MAX_DEPTH} levels")
        if state["count"] > MAX_ELEMENTS:
            raise _FatalXml(f"stack.xml has more than {MAX_ELEMENTS} elements")
        builder.start(name(tag), {name(k): v for k, v in attrs.items() if not k.startswith("xmlns")})

    def end(tag: str) -> None:
        state["depth"] -= 1
        builder.end(name(tag))

    parser = expat.ParserCreate(namespace_separator=" ") if namespaces else expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(data, True)
    return builder.close()


def _prefixed(name: str) -> str:
    """Without namespace processing: ``sfumato:x`` → ``{urn:sfumato:1}x``; others as written."""
    prefix, sep, local = name.partition(":")
    return _S + local if sep and prefix == "sfumato" else name


def _clark(name: str) -> str:
    """expat's ``"uri local"`` → ElementTree's ``"{uri}local"``."""
    uri, sep, local = name.rpartition(" ")
    return "{" + uri + "}" + local if sep else name

