"""The document edits the window performs, in one place, each one undoable.

Widgets and tools call these functions instead of reaching into the canvas editing verbs
themselves, so the Qt side has a single seam onto :mod:`sfumato.canvas.editing`.
Everything here is Qt-free.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sfumato.canvas import editing
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import (
    ControlSettings,
    GroupLayer,
    Layer,
    PixelLayer,
    ReferenceSettings,
    Role,
    document_offset,
)
from sfumato.canvas.model.pose import Person, Pose
from sfumato.vocabulary.kinds import ControlKind

log = logging.getLogger(__name__)

ROLE_NAMES = {
    Role.PAINT: "Paint",
    Role.INPAINT_MASK: "Inpaint mask",
    Role.REGION: "Region",
    Role.CONTROL: "Control",
    Role.GENERATED: "Generated",
    Role.REFERENCE: "Reference",
}


def unique_name(doc: Document, base: str) -> str:
    names = {layer.name for layer in doc.layers()}
    if base not in names:
        return base
    n = 2
    while f"{base} {n}" in names:
        n += 1
    return f"{base} {n}"


def insertion_point(doc: Document) -> tuple[GroupLayer, int]:
    """Where a new layer goes: just above the active layer (inside its group), or on top;
    into the active group when a group is active."""
    active = doc.active
    if isinstance(active, GroupLayer):
        return active, 0
    if active is not None and active.parent is not None:
        parent, index = doc.index_of(active)
        return parent, index
    return doc.root, 0


def add_layer(
    doc: Document,
    role: Role | None,
    *,
    name: str | None = None,
    layer: Layer | None = None,
    activate: bool = True,
) -> Layer:
    """Add a new layer (``role=None`` adds a group) above the active one; undoable."""
    if layer is None:
        if role is None:
            layer = GroupLayer(unique_name(doc, name or "Group"))
        else:
            layer = PixelLayer(
                unique_name(doc, name or ROLE_NAMES[role]),
                role=role,
                control=ControlSettings() if role is Role.CONTROL else None,
                reference=ReferenceSettings() if role is Role.REFERENCE else None,
            )
    parent, index = insertion_point(doc)
    editing.add_layer(doc, layer, parent, index, activate)
    return layer


def reference_layer_from_image(doc: Document, path: str | Path) -> PixelLayer:
    """A new reference layer (not yet in ``doc``) holding the PNG/JPEG/WebP at ``path``
    at its own size, centred on the canvas (the planner reads a reference layer's own
    pixels wherever they lie, so nothing is cut or scaled here)."""
    from sfumato.canvas.files.imageio import load_image_layer

    path = Path(path)
    layer = load_image_layer(path, name=unique_name(doc, path.stem or "Reference"))
    bounds = layer.surface.bounds()
    layer.role = Role.REFERENCE
    layer.reference = ReferenceSettings()
    layer.x = (doc.width - bounds.w) // 2 - bounds.x
    layer.y = (doc.height - bounds.h) // 2 - bounds.y
    return layer


def add_reference_image(doc: Document, path: str | Path) -> PixelLayer:
    """Add the image at ``path`` as a reference layer above the active one: one undo step."""
    layer = reference_layer_from_image(doc, path)
    add_layer(doc, Role.REFERENCE, layer=layer)
    return layer


def set_role(doc: Document, layer: PixelLayer, role: Role) -> None:
    """Give ``layer`` another role (a control or reference layer gets default settings
    when it has none); one undo step."""
    set_property(doc, layer, "role", role)


def remove_layer(doc: Document, layer: Layer) -> None:
    editing.remove_layer(doc, layer)


def move_layer(doc: Document, layer: Layer, parent: GroupLayer, index: int) -> None:
    """Move ``layer`` into ``parent`` at ``index`` (counted after removing it from where it is)."""
    editing.move_layer(doc, layer, parent, index)


def set_property(
    doc: Document, layer: Layer, name: str, value: Any, merge_id: object | None = None
) -> None:
    """Set a layer property (opacity, visible, locked, blend, name, prompt, ...); undoable.
    Consecutive changes with the same ``merge_id`` (a slider drag, typing) are one undo step."""
    if getattr(layer, name) == value:
        return
    editing.set_property(doc, layer, name, value, merge_id)


def set_selection(doc: Document, mask: np.ndarray | None) -> None:
    editing.set_selection(doc, mask)


def put_layer_pixels(doc: Document, layer: PixelLayer, rgba: np.ndarray, label: str) -> None:
    """Replace ``layer``'s pixels over the document with ``rgba`` (document-sized straight
    RGBA uint8, placed at document (0, 0)); one undoable command."""
    editing.put_pixels(doc, layer, rgba, 0, 0, label=label)


def set_layer_offset(doc: Document, layer: Layer, x: int, y: int, merge_id: object) -> None:
    """Move ``layer`` to offset ``(x, y)``; calls with the same ``merge_id`` (one drag) are
    one undo step."""
    if (layer.x, layer.y) != (x, y):
        editing.set_offset(doc, layer, x, y, merge_id)


# -- pose layers ---------------------------------------------------------------------------------
def is_pose_layer(layer: Layer | None) -> bool:
    """Whether ``layer`` is a control layer of kind ``pose`` (skeleton or not)."""
    return (
        isinstance(layer, PixelLayer) and layer.role is Role.CONTROL
        and layer.control is not None and layer.control.kind is ControlKind.POSE
    )


def set_pose(doc: Document, layer: PixelLayer, pose: Pose, label: str = "Edit Pose") -> None:
    """Give the pose layer ``layer`` the skeleton ``pose`` (layer space) and redraw its
    pixels to match (OpenPose's colour map on transparency): one undo step."""
    from sfumato.canvas.edits.pose_commands import set_pose as execute_set_pose
    from sfumato.planner.pose import pose_layer_pixels

    drawn = pose_layer_pixels(pose)
    if drawn is None:
        execute_set_pose(doc, layer, pose, None, label=label)
        return
    rgba, x, y = drawn
    ox, oy = document_offset(layer)
    execute_set_pose(doc, layer, pose, rgba, x + ox, y + oy, label=label)


def add_pose_layer(doc: Document, people: int = 1) -> PixelLayer:
    """A new pose layer above the active one holding ``people`` standing skeletons
    (side by side, centred on the canvas), drawn in its pixels: one undo step."""
    from sfumato.canvas.model.tiles import TiledSurface
    from sfumato.planner.pose import pose_layer_pixels

    height = 0.7 * min(doc.height, doc.width * 1.5)
    step = doc.width / (people + 1)
    pose = Pose(tuple(
        Person.standing(step * (i + 1), doc.height / 2, height) for i in range(people)
    ))
    surface = TiledSurface()
    drawn = pose_layer_pixels(pose)
    if drawn is not None:
        surface.write(drawn[1], drawn[2], drawn[0])
    layer = PixelLayer(
        unique_name(doc, "Pose"), surface, role=Role.CONTROL,
        control=ControlSettings(kind=ControlKind.POSE, pose=pose),
    )
    add_layer(doc, Role.CONTROL, layer=layer)
    return layer


# -- depth from the picture ----------------------------------------------------------------------
def visible_picture(doc: Document) -> np.ndarray:
    """The visible picture over white, uint8 RGB at the document's size (what "Depth from
    Image" reads: paint and generated layers, as flattening does)."""
    from sfumato.canvas.render.composite import flatten

    return np.ascontiguousarray(flatten(doc, background=(255, 255, 255, 255))[..., :3])


def depth_pixels(depth: np.ndarray) -> np.ndarray:
    """A depth map (uint8 ``(H, W)``, near = 255) as opaque grey straight RGBA."""
    grey = np.asarray(depth, np.uint8)
    return np.dstack([grey, grey, grey, np.full_like(grey, 255)])


def replace_layer_pixels(doc: Document, layer: PixelLayer, rgba: np.ndarray, label: str) -> None:
    """Make ``rgba`` (document-sized, placed at document (0, 0)) the layer's only pixels:
    what it held elsewhere (beyond the canvas, after a move) goes too. One undo step."""
    from sfumato.canvas.edits.pixel_commands import ClearLayer, PutPixels
    from sfumato.canvas.model.history import MacroCommand

    doc.execute(MacroCommand(label, [
        ClearLayer(doc, layer, use_selection=False),
        PutPixels(doc, layer, rgba, 0, 0, label=label),
    ]))
