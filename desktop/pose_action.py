"""Pose from Image: the visible picture → the active pose layer's skeleton.

An :class:`~sfumato.desktop.estimator_action.EstimatorAction`: the picture goes to the
worker as a :class:`~sfumato.desktop.worker.PoseInput`; the engine runs the pose
estimator (:meth:`~sfumato.inference.engine.Engine.estimate_pose`: VitPose, with a person
detector when one is installed, else the whole picture read as one person). The people come back as ``posed(job, estimate)`` in the picture's (document)
pixels; they are moved into the layer's own pixels (document pixels less the layer's
document offset, as the Pose tool stores them) and replace the layer's skeleton and its
drawn pixels as one undo step ("Pose from Image") through
:func:`~sfumato.desktop.layer_actions.set_pose`.
"""

from __future__ import annotations

from typing import Any

from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import Layer, PixelLayer, document_offset
from sfumato.canvas.model.pose import Person, Pose
from sfumato.desktop import layer_actions
from sfumato.desktop.estimator_action import EstimatorAction
from sfumato.desktop.worker import GenerationWorker, PoseInput

LABEL = "Pose from Image"


def pose_layer_problem(layer: Layer | None) -> str | None:
    """Why ``layer`` cannot take a pose from the picture, or ``None`` when it can."""
    if not layer_actions.is_pose_layer(layer):
        return "Select a pose layer to fill from the picture (Layer ▸ New Pose Layer makes one)."
    assert isinstance(layer, PixelLayer)
    if layer.locked or any(g.locked for g in layer.ancestors()):
        return f"Layer {layer.name!r} is locked; unlock it to fill it with the pose."
    return None


def pose_in_layer(people: Any, layer: Layer) -> Pose:
    """The estimator's people (``EstimatedPerson``s: 18 keypoints in document pixels,
    ``None`` when absent) as a :class:`Pose` in ``layer``'s pixels; a person with no
    keypoint at all is left out."""
    ox, oy = document_offset(layer)
    out = []
    for person in people:
        keypoints = tuple(None if p is None else (p[0] - ox, p[1] - oy) for p in person.keypoints)
        if any(p is not None for p in keypoints):
            out.append(Person(keypoints))
    return Pose(tuple(out))


class PoseFromImage(EstimatorAction):
    """Runs "Pose from Image" through the window's worker (module docstring)."""

    label = LABEL
    working = "Finding the pose in the picture…"

    def problem(self, layer: Layer | None) -> str | None:
        return pose_layer_problem(layer)

    def work(self, doc: Document) -> PoseInput:
        return PoseInput(layer_actions.visible_picture(doc), self.model)

    def result_signal(self, worker: GenerationWorker) -> Any:
        return worker.posed

    def place(self, doc: Document, layer: PixelLayer, result: Any) -> str | None:
        pose = pose_in_layer(result.people, layer)
        if not pose.people:
            self.message.emit(" ".join(filter(None, ["Pose from Image found nobody in the picture.", result.note])))
            return None
        layer_actions.set_pose(doc, layer, pose, LABEL)
        found = "1 person" if len(pose.people) == 1 else f"{len(pose.people)} people"
        return " ".join(filter(None, [f"Pose from Image: {found}.", result.note]))
