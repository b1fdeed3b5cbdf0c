"""What the recovery journal records besides pixels: the layer tree, the recipe, the size.

:func:`capture_structure` turns the document's layer tree (every layer's properties, the
active layer, the document's extra attributes) into plain JSON data keyed by layer id;
:func:`apply_structure` makes a document's tree match such data again, reusing the layer
objects it already has for those ids (so pixels and undo steps that hold them stay
valid) and creating the others. Both sides use the same names, so a property added to
layers is added here once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.layers import (
    ControlSettings,
    ControlSource,
    GroupLayer,
    Layer,
    PixelLayer,
    ReferenceSettings,
    Role,
)
from sfumato.canvas.model.pose import Pose
from sfumato.canvas.pixels.blend import BlendMode
from sfumato.vocabulary.kinds import ControlKind, ReferenceKind

_COMMON = ("name", "opacity", "visible", "locked", "x", "y")
_PIXEL = ("prompt", "negative")


def _node(layer: Layer) -> dict[str, Any]:
    node: dict[str, Any] = {"id": layer.id, "group": layer.is_group, "blend": layer.blend.value}
    for name in _COMMON:
        node[name] = getattr(layer, name)
    if layer.extra_attributes:
        node["extra"] = dict(layer.extra_attributes)
    if isinstance(layer, GroupLayer):
        node["children"] = [_node(child) for child in layer.children]
    elif isinstance(layer, PixelLayer):
        node["role"] = layer.role.value
        for name in _PIXEL:
            node[name] = getattr(layer, name)
        c = layer.control
        node["control"] = None if c is None else [c.kind.value, c.strength, c.start, c.end]
        if c is not None and (c.pose is not None or c.source is not None):
            # appended only when set, so journals written before them read the same;
            # the pose in the layer's own pixels (OpenPose JSON, canvas size unused)
            node["control"] += [
                None if c.pose is None else c.pose.to_json(0, 0),
                None if c.source is None else c.source.value,
            ]
        r = layer.reference
        if r is not None:  # absent when None, so journals written before it read the same
            node["reference"] = [r.kind.value, r.strength, r.start, r.end]
        node["generation"] = layer.generation
    return node


def capture_structure(doc: Document) -> dict[str, Any]:
    """The tree and properties of ``doc`` as JSON-ready data (no pixels)."""
    return {
        "root": _node(doc.root),
        "active": doc.active.id if doc.active is not None else None,
        "extra": dict(doc.extra_attributes),
    }


def structure_ids(structure: dict[str, Any]) -> dict[int, bool]:
    """Every layer id in ``structure`` (root included) -> whether it is a pixel layer."""
    out: dict[int, bool] = {}
    stack = [structure["root"]]
    while stack:
        node = stack.pop()
        out[int(node["id"])] = not node["group"]
        stack.extend(node.get("children", ()))
    return out


def _set_props(layer: Layer, node: dict[str, Any]) -> None:
    for name in _COMMON:
        setattr(layer, name, node[name])
    layer.blend = BlendMode(node["blend"])
    layer.extra_attributes = dict(node.get("extra", {}))
    if isinstance(layer, PixelLayer):
        layer.role = Role(node["role"])
        for name in _PIXEL:
            setattr(layer, name, node[name])
        c = node["control"]
        layer.control = None if c is None else ControlSettings(
            ControlKind(c[0]), c[1], c[2], c[3],
            pose=Pose.from_json(c[4]) if len(c) > 4 and c[4] is not None else None,
            source=ControlSource(c[5]) if len(c) > 5 and c[5] is not None else None,
        )
        r = node.get("reference")
        layer.reference = None if r is None else ReferenceSettings(ReferenceKind(r[0]), r[1], r[2], r[3])
        layer.generation = node["generation"]


def apply_structure(doc: Document, structure: dict[str, Any], layers: dict[int, Layer]) -> None:
    """Make ``doc``'s tree equal ``structure``; ``layers`` maps journal ids to layer
    objects (reused) and receives the layers created here."""

    def build(node: dict[str, Any]) -> Layer:
        jid = int(node["id"])
        layer = layers.get(jid)
        if layer is None:
            layer = GroupLayer(node["name"]) if node["group"] else PixelLayer(node["name"])
            layers[jid] = layer
        _set_props(layer, node)
        if isinstance(layer, GroupLayer):
            for child in layer.children:
                child.parent = None
            layer.children = []
            for child_node in node["children"]:
                layer.append(build(child_node))
        return layer

    root = build(structure["root"])
    assert isinstance(root, GroupLayer)
    root.parent = None
    doc.root = root
    active = structure["active"]
    doc.active = layers.get(int(active)) if active is not None else None
    doc.extra_attributes = dict(structure["extra"])


def capture_recipe(doc: Document) -> dict[str, Any]:
    return dataclasses.asdict(doc.recipe)


def recipe_from(data: dict[str, Any]) -> Recipe:
    known = {f.name for f in dataclasses.fields(Recipe)}
    return Recipe(**{k: v for k, v in data.items() if k in known})
