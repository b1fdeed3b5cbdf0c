"""Layers: pixel layers with roles (the AI recipe lives in the document) and groups.

A layer's pixels are in its own surface space; ``x``/``y`` is where the surface's origin
sits in document space. Groups hold children **top first** (as OpenRaster's stack.xml
lists them) and always composite in isolation.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sfumato.canvas.model.geometry import Rect
from sfumato.canvas.model.pose import Pose
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.vocabulary.kinds import ControlKind, ReferenceKind


class Role(Enum):
    """What a pixel layer means to the generator."""

    PAINT = "paint"  # ordinary paint: part of the image
    INPAINT_MASK = "inpaint-mask"  # alpha = where to regenerate
    REGION = "region"  # alpha = where this layer's prompt applies
    CONTROL = "control"  # a sketch/edge/depth image that steers the composition
    GENERATED = "generated"  # a result, carrying the parameters that made it
    REFERENCE = "reference"  # a picture to follow (style, composition, face, content)

    @property
    def is_image(self) -> bool:
        """Whether layers of this role are part of the picture (flatten, export)."""
        return self in (Role.PAINT, Role.GENERATED)

    @classmethod
    def parse(cls, text: str | None) -> Role:
        if not text:
            return cls.PAINT
        try:
            return cls(text.strip())
        except ValueError:
            raise ValueError(
                f"unknown layer role {text!r}; known roles: " + ", ".join(r.value for r in cls)
            ) from None


class ControlSource(Enum):
    """Where a control layer's pixels come from when it has none: ``CANVAS`` = the
    flattened picture run through the kind's estimator (``sfumato render`` fills an empty
    depth layer so before planning)."""

    CANVAS = "canvas"


@dataclass(frozen=True)
class ControlSettings:
    """How a control layer steers generation; see :class:`ControlSpec` in the request.

    ``pose`` (pose layers): the editable skeleton, in the layer's surface space (see
    :mod:`sfumato.canvas.model.pose`); when set, the planner draws it instead of reading
    the layer's pixels, and the pixels hold the same drawing for display (re-rendered by
    every pose edit). ``source``: see :class:`ControlSource`.
    """

    kind: ControlKind = ControlKind.SCRIBBLE
    strength: float = 1.0  # 0..2
    start: float = 0.0  # fraction of the schedule, 0..1
    end: float = 1.0
    pose: Pose | None = None
    source: ControlSource | None = None


@dataclass(frozen=True)
class ReferenceSettings:
    """How a reference layer's picture guides generation; see :class:`ReferenceImage` in
    the request. The layer's pixels are the picture; a reference layer inside a region's
    group (or under a region's name) applies to that region only."""

    kind: ReferenceKind = ReferenceKind.CONTENT
    strength: float = 1.0  # 0..2
    start: float = 0.0  # fraction of the schedule, 0..1
    end: float = 1.0


_ids = itertools.count(1)


class Layer:
    """Properties shared by pixel layers and groups."""

    def __init__(
        self,
        name: str,
        *,
        opacity: float = 1.0,
        visible: bool = True,
        locked: bool = False,
        blend: BlendMode = BlendMode.NORMAL,
        x: int = 0,
        y: int = 0,
        extra_attributes: dict[str, str] | None = None,
    ) -> None:
        self.id = next(_ids)  # unique in this process; not saved
        self.name = name
        self.opacity = opacity
        self.visible = visible
        self.locked = locked
        self.blend = blend
        self.x = x
        self.y = y
        #: attributes of the file this layer came from that Sfumato does not use (other
        #: programs' settings, e.g. ``krita:…``): kept, copied with the layer, written back
        self.extra_attributes: dict[str, str] = dict(extra_attributes or {})
        self.parent: GroupLayer | None = None

    @property
    def is_group(self) -> bool:
        return False

    def ancestors(self) -> Iterator[GroupLayer]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def effectively_visible(self) -> bool:
        return self.visible and all(g.visible for g in self.ancestors())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} #{self.id} {self.name!r}>"


class PixelLayer(Layer):
    """A layer of pixels with a role.

    Role-specific data: ``prompt``/``negative`` (region), ``control`` (control),
    ``reference`` (reference), ``generation`` (generated: the JSON-ready summary of the request that made it).
    """

    def __init__(
        self,
        name: str,
        surface: TiledSurface | None = None,
        *,
        role: Role = Role.PAINT,
        prompt: str = "",
        negative: str = "",
        control: ControlSettings | None = None,
        reference: ReferenceSettings | None = None,
        generation: dict[str, Any] | None = None,
        **props: Any,
    ) -> None:
        super().__init__(name, **props)
        self.surface = surface if surface is not None else TiledSurface()
        self.role = role
        self.prompt = prompt
        self.negative = negative
        self.control = control if control is not None else (
            ControlSettings() if role is Role.CONTROL else None
        )
        self.reference = reference if reference is not None else (
            ReferenceSettings() if role is Role.REFERENCE else None
        )
        self.generation = generation

    def document_bounds(self) -> Rect:
        """Bounds of the non-transparent pixels, in document space (group offsets included)."""
        return self.surface.bounds().translate(*document_offset(self))


def document_offset(layer: Layer) -> tuple[int, int]:
    """Where ``layer``'s surface origin sits in document space: its own ``x``/``y`` plus
    those of the groups holding it."""
    x, y = layer.x, layer.y
    for group in layer.ancestors():
        if group.parent is not None:  # the root's own x/y are not an offset
            x += group.x
            y += group.y
    return x, y


class GroupLayer(Layer):
    """A group; ``children`` are listed top first. Groups composite in isolation."""

    def __init__(self, name: str, children: list[Layer] | None = None, **props: Any) -> None:
        super().__init__(name, **props)
        self.children: list[Layer] = []
        for child in children or []:
            self.append(child)

    @property
    def is_group(self) -> bool:
        return True

    def insert(self, index: int, layer: Layer) -> None:
        """Insert ``layer`` at ``index`` (0 = top)."""
        if layer is self or any(a is layer for a in self.ancestors()):
            raise ValueError("a group cannot contain itself")
        layer.parent = self
        self.children.insert(index, layer)

    def append(self, layer: Layer) -> None:
        """Add ``layer`` at the bottom of this group."""
        self.insert(len(self.children), layer)

    def remove(self, layer: Layer) -> int:
        index = self.children.index(layer)
        del self.children[index]
        layer.parent = None
        return index

    def walk(self) -> Iterator[Layer]:
        """This group and every descendant, depth-first, top first."""
        yield self
        for child in self.children:
            if isinstance(child, GroupLayer):
                yield from child.walk()
            else:
                yield child

    def pixel_layers(self) -> Iterator[PixelLayer]:
        for layer in self.walk():
            if isinstance(layer, PixelLayer):
                yield layer



def copy_layer(layer: Layer, name: str | None = None) -> Layer:
    """A deep copy of ``layer`` (groups with their children); pixels are shared copy-on-write.

    The copy belongs to no group (``parent`` is None) and has a new ``id``.
    """
    props: dict[str, Any] = dict(
        opacity=layer.opacity, visible=layer.visible, locked=layer.locked,
        blend=layer.blend, x=layer.x, y=layer.y, extra_attributes=layer.extra_attributes,
    )
    new_name = layer.name if name is None else name
    if isinstance(layer, GroupLayer):
        return GroupLayer(new_name, [copy_layer(c) for c in layer.children], **props)
    if isinstance(layer, PixelLayer):
        generation = None if layer.generation is None else dict(layer.generation)
        return PixelLayer(
            new_name, layer.surface.copy(), role=layer.role, prompt=layer.prompt,
            negative=layer.negative, control=layer.control, reference=layer.reference,
            generation=generation, **props,
        )
    raise TypeError(f"cannot copy a layer of type {type(layer).__name__}")
