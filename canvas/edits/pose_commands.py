"""Undoable edits of a pose layer's skeleton: :class:`SetPose`.

A pose layer (a control layer of kind ``pose``) holds its skeleton in
``ControlSettings.pose`` and shows the same skeleton in its pixels, so other programs
(and Sfumato with the skeleton hidden) see what the ControlNet will see. Every change of
the skeleton is one :class:`SetPose`: the new settings *and* the new pixels, one undo step
(a joint dragged, a person added, deleted or mirrored). The canvas draws nothing itself
(it does not know OpenPose's colours): the caller passes the rendered pixels
(``sfumato.desktop.layer_actions.set_pose`` renders them with :mod:`sfumato.planner.pose`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sfumato.canvas.edits.commands import InvalidEditError, LayerLockedError, require_in_document
from sfumato.canvas.edits.pixel_commands import ClearLayer, PutPixels
from sfumato.canvas.edits.property_commands import SetProperties
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.history import Command, MacroCommand
from sfumato.canvas.model.layers import ControlSettings, PixelLayer, Role
from sfumato.canvas.model.pose import Pose
from sfumato.vocabulary.kinds import ControlKind

__all__ = ["SetPose", "set_pose"]


class SetPose(MacroCommand):
    """Give the pose layer ``layer`` the skeleton ``pose`` and replace its pixels with
    ``pixels`` (straight RGBA uint8, placed at document ``(x, y)``; ``None`` leaves the
    layer empty). One undo step; undo restores the old skeleton and pixels exactly."""

    def __init__(self, doc: Document, layer: PixelLayer, pose: Pose | None,
                 pixels: np.ndarray | None, x: int = 0, y: int = 0, label: str = "Edit Pose") -> None:
        if not isinstance(layer, PixelLayer) or layer.role is not Role.CONTROL:
            raise InvalidEditError(f"{layer.name!r} is not a control layer; a pose lives on a pose control layer")
        if layer.locked or any(g.locked for g in layer.ancestors()):
            raise LayerLockedError(layer)
        require_in_document(doc, layer)
        settings = replace(layer.control or ControlSettings(), kind=ControlKind.POSE, pose=pose)
        commands: list[Command] = [
            SetProperties(doc, layer, {"control": settings}),
            ClearLayer(doc, layer, use_selection=False),
        ]
        if pixels is not None:
            commands.append(PutPixels(doc, layer, pixels, x, y, label=label))
        super().__init__(label, commands)


def set_pose(doc: Document, layer: PixelLayer, pose: Pose | None, pixels: np.ndarray | None,
             x: int = 0, y: int = 0, label: str = "Edit Pose") -> None:
    """Execute :class:`SetPose` on ``doc``."""
    doc.execute(SetPose(doc, layer, pose, pixels, x, y, label))
