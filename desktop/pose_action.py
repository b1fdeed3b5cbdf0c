"""Pose from Image: the visible picture → the active pose layer's skeleton.

The picture is flattened on the GUI thread (copy-on-write, fast) and sent to the
generation worker as a :class:`~sfumato.desktop.worker.PoseInput`; the worker owns the
engine, which runs the pose estimator (:meth:`~sfumato.inference.engine.Engine.estimate_pose`:
VitPose, with a person detector when one is installed, else the whole picture read as one
person). The people come back as ``posed(job, estimate)`` in the picture's (document)
pixels; they are moved into the layer's own pixels (document pixels less the layer's
document offset, as the Pose tool stores them) and replace the layer's skeleton and its
drawn pixels as one undo step ("Pose from Image") through
:func:`~sfumato.desktop.layer_actions.set_pose`. As for depth, the job shares the worker's
queue with generation (latest wins). A missing estimator fails with the engine's message,
which says what to download and where to put it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import Layer, PixelLayer, document_offset
from sfumato.canvas.model.pose import Person, Pose
from sfumato.desktop import layer_actions
from sfumato.desktop.worker import FailureKind, GenerationWorker, PoseInput

log = logging.getLogger(__name__)

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


class PoseFromImage(QObject):
    """Runs "Pose from Image" through the window's worker. ``message(text)`` is for the
    status bar; ``placed(layer)`` after the skeleton is in the layer; ``model``
    optionally names the VitPose folder (else the catalog finds one)."""

    message = Signal(str)
    placed = Signal(object)

    def __init__(self, worker: Callable[[], GenerationWorker | None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._connected: GenerationWorker | None = None
        self._job: tuple[int, Document, PixelLayer, tuple[int, int]] | None = None
        self.model: str | None = None

    @property
    def busy(self) -> bool:
        return self._job is not None

    def run(self, doc: Document | None, layer: Layer | None) -> int | None:
        """Start finding the pose for ``layer``; the job id, or ``None`` when it cannot
        start (the reason goes to ``message``)."""
        if doc is None:
            return None
        problem = pose_layer_problem(layer)
        if problem is not None:
            self.message.emit(problem)
            return None
        assert isinstance(layer, PixelLayer)
        worker = self._worker()
        if worker is None:
            self.message.emit("Pose from Image needs the inference engine, which is not set up in this window.")
            return None
        self._connect(worker)
        job = worker.submit(PoseInput(layer_actions.visible_picture(doc), self.model))
        self._job = (job, doc, layer, (doc.width, doc.height))
        self.message.emit("Finding the pose in the picture…")
        return job

    def _connect(self, worker: GenerationWorker) -> None:
        if self._connected is worker:
            return
        worker.posed.connect(self._on_posed)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._connected = worker

    def _on_posed(self, job: int, estimate: Any) -> None:
        if self._job is None or self._job[0] != job:
            return
        _, doc, layer, size = self._job
        self._job = None
        if size != (doc.width, doc.height):
            self.message.emit("Pose from Image: the canvas changed size meanwhile; try again.")
            return
        pose = pose_in_layer(estimate.people, layer)
        if not pose.people:
            self.message.emit(" ".join(filter(None, ["Pose from Image found nobody in the picture.", estimate.note])))
            return
        try:
            layer_actions.set_pose(doc, layer, pose, LABEL)
        except Exception as exc:  # noqa: BLE001 - a refused edit (layer gone, locked) is a message
            self.message.emit(f"Cannot place the pose: {exc}")
            return
        found = "1 person" if len(pose.people) == 1 else f"{len(pose.people)} people"
        self.message.emit(" ".join(filter(None, [f"Pose from Image: {found}.", estimate.note])))
        self.placed.emit(layer)

    def _on_failed(self, job: int, text: str, _kind: FailureKind) -> None:
        if self._job is not None and self._job[0] == job:
            self._job = None
            self.message.emit(f"Pose from Image failed: {text}")

    def _on_cancelled(self, job: int) -> None:
        if self._job is not None and self._job[0] == job:
            self._job = None
            self.message.emit("Pose from Image was cancelled.")
