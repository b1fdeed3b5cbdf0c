"""Reading OpenRaster (.ora) files into a :class:`~sfumato.canvas.model.document.Document`.

What the reader makes of ``stack.xml`` (the format is described in :mod:`sfumato.canvas.files.ora`):
``<image w h>`` → the document and its recipe; ``<stack>`` → a group; ``<layer src>`` → a
pixel layer whose PNG is decoded into its surface. A layer gets ``layer.x = layer.y = 0``
and its pixels are placed at the file's ``(x, y)`` in its surface, so document-space
pixels round-trip exactly.

Lenient about what other programs write (missing ``version``, unknown attributes or
composite ops, missing ``x``/``y``/``opacity``; attributes it does not use are kept on the
layer and written back) and strict about safety: the container is read through
:mod:`sfumato.canvas.files.ora_archive` within its budgets, and before any layer is decoded the
whole file's cost is added up from the PNG headers (:class:`~sfumato.canvas.files.limits.Budget`,
:data:`MAX_LAYER_PIXELS`). Every problem raises a
:class:`~sfumato.canvas.files.file_errors.FileFormatError` subclass naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfumato.canvas.files.file_errors import (
    BadAttributeError,
    ImageTooLargeError,
    MalformedXmlError,
    MissingEntryError,
)
from sfumato.canvas.files.imageio import (
    MAX_SIDE,
    check_dimensions,
    decode_into_surface,
    png_decode_bytes,
    png_header,
)
from sfumato.canvas.files.limits import Budget, kept_area, tile_bytes
from sfumato.canvas.files.ora_archive import (
    MAX_DEPTH,
    ORA_VERSION,
    OraArchive,
    check_member_name,
    open_archive,
)
from sfumato.canvas.files.ora_archive import SFUMATO as _S
from sfumato.canvas.files.recipe_parameters import (
    CFG_RANGE,
    SEED_RANGE,
    STEPS_RANGE,
    STRENGTH_RANGE,
)
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.layers import (
    ControlSettings,
    ControlSource,
    GroupLayer,
    Layer,
    PixelLayer,
    ReferenceSettings,
    Role,
)
from sfumato.canvas.model.pose import Pose, PoseError
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.vocabulary.errors import RequestError
from sfumato.vocabulary.kinds import ControlKind, FillMode, ReferenceKind, Sampler

log = logging.getLogger(__name__)

# Budgets of the document (the container's are in ora_archive); read at call time, so a
# test may lower them with monkeypatch.
MAX_LAYER_PIXELS = 1 << 30  # pixels over all layers, counted per use (the memory budget rules first)
MAX_OFFSET = 1 << 24  # |x|, |y| of a layer

_NORMAL_SPELLINGS = {"", "svg:src-over", "svg:normal", "svg:src_over"}
#: the ``<layer>``/``<stack>`` attributes Sfumato reads and writes itself
_LAYER_ATTRIBUTES = (
    "name", "src", "x", "y", "opacity", "visibility", "composite-op", "edit-locked",
    "selected", "isolation",
)


def load_ora(path: str | Path, *, strict: bool = True) -> Document:
    """Read an OpenRaster file into a :class:`Document`.

    ``strict`` concerns only Sfumato's own ``sfumato:`` attributes: a value that is not
    valid (``sfumato:steps="many"``, an unknown control kind, broken generation JSON)
    raises :class:`BadAttributeError` when ``strict`` is true, and is dropped with a
    logged warning when it is false (so a window can still open the pixels). Safety
    problems always raise, whatever ``strict`` says.
    """
    path = Path(path)
    with open_archive(path) as archive:
        return _Reader(path, archive, strict).read()


@dataclass
class _Reader:
    path: Path
    archive: OraArchive
    strict: bool
    pixels_read: int = 0
    active: Layer | None = None
    layer_count: int = 0
    keep: Rect = field(default_factory=lambda: Rect(0, 0, 0, 0))

    def read(self) -> Document:
        return self._document(self.archive.stack_xml())

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
            check_member_name(src, self.path, what=f"layer {name!r} src")
            if src not in self.archive.entries:
                raise MissingEntryError(self.path, f"layer {name!r} points to {src!r}, which is not in the file")
            header = self.archive.png_header(src)
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
            decode = self.archive.entries[src].file_size + width * height * png_decode_bytes(depth, colour)
            budget.add(tile_bytes(kept), decode)

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
        self._roles(element, layer, gx, gy)
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
        data = self.archive.member(src)
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

    def _roles(self, element: ET.Element, layer: PixelLayer, gx: int = 0, gy: int = 0) -> None:
        """``gx``, ``gy``: the enclosing groups' offsets (the layer's own are 0 once read)."""
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
            layer.control = ControlSettings(
                kind, *self._timing(element, where),
                pose=self._pose(element, where, gx, gy), source=self._source(element, where),
            )
        reference_text = element.get(_S + "reference")
        if reference_text is not None or layer.role is Role.REFERENCE:
            reference_kind = ReferenceKind.CONTENT
            if reference_text is not None:
                try:
                    reference_kind = ReferenceKind.parse(reference_text)
                except RequestError as exc:
                    self._bad(f"{where}: sfumato:reference: {exc}")
            layer.reference = ReferenceSettings(reference_kind, *self._timing(element, where))
        generation = element.get(_S + "generation")
        if generation is not None:
            layer.generation = self._generation(generation, where)

    def _timing(self, element: ET.Element, where: str) -> tuple[float, float, float]:
        """A control or reference layer's ``sfumato:strength`` (0..2), ``sfumato:start``
        and ``sfumato:end`` (fractions of the schedule, start below end)."""
        strength = self._float(element, "strength", where, 1.0, 0.0, 2.0)
        start = self._float(element, "start", where, 0.0, 0.0, 1.0)
        end = self._float(element, "end", where, 1.0, 0.0, 1.0)
        if start >= end:
            self._bad(f"{where}: sfumato:start ({start}) must be below sfumato:end ({end})")
            start, end = 0.0, 1.0
        return strength, start, end

    def _pose(self, element: ET.Element, where: str, gx: int, gy: int) -> Pose | None:
        """``sfumato:pose``: OpenPose JSON in document pixels → the layer's surface space."""
        text = element.get(_S + "pose")
        if text is None:
            return None
        try:
            return Pose.from_text(text, -gx, -gy)
        except PoseError as exc:
            self._bad(f"{where}: sfumato:pose: {exc}")
            return None

    def _source(self, element: ET.Element, where: str) -> ControlSource | None:
        text = element.get(_S + "source")
        if text is None:
            return None
        try:
            return ControlSource(text.strip().lower())
        except ValueError:
            known = ", ".join(s.value for s in ControlSource)
            self._bad(f"{where}: sfumato:source={text!r} is not a known source ({known})")
            return None

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
        if (text := image.get(_S + "fill")) is not None:
            try:
                recipe.fill = FillMode(text.strip().lower()).value
            except ValueError:
                self._bad(f"{where}: sfumato:fill={text!r}; known fills: " + ", ".join(f.value for f in FillMode))
        if (text := image.get(_S + "regions-include-prompt")) is not None:
            flag = text.strip().lower()
            if flag in ("true", "false"):
                recipe.regions_include_prompt = flag == "true"
            else:
                self._bad(f"{where}: sfumato:regions-include-prompt={text!r} is neither true nor false")
        recipe.style = image.get(_S + "style") or None
        if (text := image.get(_S + "style-resolved")) is not None:
            try:
                resolved = json.loads(text)
            except (ValueError, RecursionError) as exc:
                self._bad(f"{where}: sfumato:style-resolved is not valid JSON ({exc})")
            else:
                if isinstance(resolved, dict):
                    recipe.style_resolved = resolved
                else:
                    self._bad(f"{where}: sfumato:style-resolved must be a JSON object")
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



def _extra(element: ET.Element, known: tuple[str, ...]) -> dict[str, str]:
    """``element``'s attributes that are neither ``known`` nor Sfumato's own."""
    return {k: v for k, v in element.attrib.items() if k not in known and not k.startswith(_S)}

