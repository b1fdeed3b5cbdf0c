"""Undoable changes to one layer's properties: :class:`SetProperties`.

Every layer has ``name opacity visible locked blend x y``; pixel layers also ``role prompt
negative control reference generation``. Values are checked on the way in (:class:`InvalidEditError`);
a locked layer refuses to move (:class:`LayerLockedError`) but can still be renamed,
hidden or unlocked. Consecutive changes sharing a ``merge_id`` are one undo step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from sfumato.canvas.edits.commands import InvalidEditError, LayerLockedError, require_in_document
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.history import Command
from sfumato.canvas.model.layers import ControlSettings, Layer, PixelLayer, ReferenceSettings, Role
from sfumato.canvas.pixels.blend import BlendMode


def _check_opacity(value: Any) -> float:
    v = float(value)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        raise InvalidEditError(f"opacity must be between 0 and 1, got {value!r}")
    return v


def _check_type(kind: type | tuple[type, ...], name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidEditError(f"{name} cannot be {value!r}")
        return value
    return check


def _check_generation(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidEditError(f"generation parameters must be a dict or None, got {type(value).__name__}")
    return None if value is None else dict(value)


def _check_reference(value: Any) -> ReferenceSettings | None:
    if value is None:
        return None
    if not isinstance(value, ReferenceSettings):
        raise InvalidEditError(f"reference settings cannot be {value!r}")
    for name, low, high in (("strength", 0.0, 2.0), ("start", 0.0, 1.0), ("end", 0.0, 1.0)):
        v = getattr(value, name)
        if not isinstance(v, int | float) or isinstance(v, bool) or not low <= v <= high:
            raise InvalidEditError(f"reference {name} must be between {low:g} and {high:g}, got {v!r}")
    if value.start >= value.end:
        raise InvalidEditError(f"reference start ({value.start}) must be below its end ({value.end})")
    return value


_LAYER_PROPERTIES: dict[str, Callable[[Any], Any]] = {
    "name": _check_type(str, "a layer name"),
    "opacity": _check_opacity,
    "visible": _check_type(bool, "visible"),
    "locked": _check_type(bool, "locked"),
    "blend": _check_type(BlendMode, "a blend mode"),
    "x": _check_type(int, "an x offset"),
    "y": _check_type(int, "a y offset"),
}
_PIXEL_PROPERTIES: dict[str, Callable[[Any], Any]] = {
    "role": _check_type(Role, "a layer role"),
    "prompt": _check_type(str, "a prompt"),
    "negative": _check_type(str, "a negative prompt"),
    "control": _check_type((ControlSettings, type(None)), "control settings"),
    "reference": _check_reference,
    "generation": _check_generation,
}
_LABELS = {
    "name": "Rename Layer", "opacity": "Layer Opacity", "visible": "Layer Visibility",
    "locked": "Lock Layer", "blend": "Blend Mode", "x": "Move Layer", "y": "Move Layer",
    "role": "Layer Role", "prompt": "Region Prompt", "negative": "Region Negative Prompt",
    "control": "Control Settings", "reference": "Reference Settings", "generation": "Generation Parameters",
}
PROPERTY_NAMES = frozenset(_LAYER_PROPERTIES) | frozenset(_PIXEL_PROPERTIES)


class SetProperties(Command):
    """Set one or more layer properties at once (e.g. ``x`` and ``y`` when moving a layer).

    Consecutive commands on the same layer and property names with the same non-None
    ``merge_id`` fold into one undo step (a slider drag, a layer drag, typing a prompt).
    """

    def __init__(self, doc: Document, layer: Layer, values: Mapping[str, Any],
                 merge_id: object | None = None) -> None:
        if not values:
            raise InvalidEditError("no property to set")
        checked: dict[str, Any] = {}
        for name, value in values.items():
            if name in _LAYER_PROPERTIES:
                checked[name] = _LAYER_PROPERTIES[name](value)
            elif name in _PIXEL_PROPERTIES:
                if not isinstance(layer, PixelLayer):
                    raise InvalidEditError(f"{name!r} is a pixel layer property; {layer.name!r} is a group")
                checked[name] = _PIXEL_PROPERTIES[name](value)
            else:
                raise InvalidEditError(
                    f"unknown layer property {name!r}; known: {', '.join(sorted(PROPERTY_NAMES))}"
                )
        if (
            isinstance(layer, PixelLayer)
            and checked.get("role") is Role.CONTROL
            and "control" not in checked
            and layer.control is None
        ):
            checked["control"] = ControlSettings()
        if (
            isinstance(layer, PixelLayer)
            and checked.get("role") is Role.REFERENCE
            and "reference" not in checked
            and layer.reference is None
        ):
            checked["reference"] = ReferenceSettings()
        self.doc = doc
        self.layer = layer
        self.new = checked
        self.old: dict[str, Any] = {}
        self.merge_id = merge_id
        first = next(iter(checked))
        self.label = _LABELS[first]
        if first == "visible":
            self.label = "Show Layer" if checked[first] else "Hide Layer"
        elif first == "locked" and not checked[first]:
            self.label = "Unlock Layer"

    def redo(self) -> None:
        require_in_document(self.doc, self.layer)
        moving = "x" in self.new or "y" in self.new
        if moving and self.layer.locked and self.new.get("locked", True):
            raise LayerLockedError(self.layer)
        self.old = {name: getattr(self.layer, name) for name in self.new}
        for name, value in self.new.items():
            self.doc._raw_set(self.layer, name, value)

    def undo(self) -> None:
        for name, value in self.old.items():
            self.doc._raw_set(self.layer, name, value)

    def merge_with(self, other: Command) -> bool:
        if (
            isinstance(other, SetProperties)
            and self.merge_id is not None
            and other.merge_id == self.merge_id
            and other.layer is self.layer
            and other.new.keys() == self.new.keys()
        ):
            self.new = dict(other.new)
            return True
        return False

