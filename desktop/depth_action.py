"""Depth from Image: the visible picture → a depth map in the active depth control layer.

The picture is flattened on the GUI thread (copy-on-write, fast) and sent to the
generation worker as a :class:`~sfumato.desktop.worker.DepthInput`; the worker owns the
engine, which runs the depth estimator (:meth:`~sfumato.inference.engine.Engine.estimate_depth`)
on its device. The map comes back as ``estimated(job, depth)`` and replaces the layer's
pixels as one undo step ("Depth from Image"). The worker's queue is shared with
generation: a depth job replaces a waiting generation and cancels a running one (latest
wins), as any new job does. A missing estimator fails with the engine's message, which
says what to download and where to put it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import Layer, PixelLayer, Role
from sfumato.desktop import layer_actions
from sfumato.desktop.worker import DepthInput, FailureKind, GenerationWorker
from sfumato.vocabulary.kinds import ControlKind

log = logging.getLogger(__name__)

LABEL = "Depth from Image"


def depth_layer_problem(layer: Layer | None) -> str | None:
    """Why ``layer`` cannot take a depth map, or ``None`` when it can."""
    if not isinstance(layer, PixelLayer) or layer.role is not Role.CONTROL:
        return "Select a control layer to fill with depth (Layer ▸ New Control Layer, then Control: Depth)."
    if layer.control is None or layer.control.kind is not ControlKind.DEPTH:
        return f"Layer {layer.name!r} is not a depth control: set its Control to Depth in the Layers dock first."
    if layer.locked:
        return f"Layer {layer.name!r} is locked; unlock it to fill it with depth."
    return None


class DepthFromImage(QObject):
    """Runs "Depth from Image" through the window's worker. ``message(text)`` is for the
    status bar; ``placed(layer)`` after the map is in the layer; ``model`` optionally names
    the estimator folder (else the catalog finds one)."""

    message = Signal(str)
    placed = Signal(object)

    def __init__(self, worker: Callable[[], GenerationWorker | None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._connected: GenerationWorker | None = None
        self._job: tuple[int, Document, PixelLayer] | None = None
        self.model: str | None = None

    @property
    def busy(self) -> bool:
        return self._job is not None

    def run(self, doc: Document | None, layer: Layer | None) -> int | None:
        """Start estimating depth for ``layer``; the job id, or ``None`` when it cannot
        start (the reason goes to ``message``)."""
        if doc is None:
            return None
        problem = depth_layer_problem(layer)
        if problem is not None:
            self.message.emit(problem)
            return None
        assert isinstance(layer, PixelLayer)
        worker = self._worker()
        if worker is None:
            self.message.emit("Depth from Image needs the inference engine, which is not set up in this window.")
            return None
        self._connect(worker)
        job = worker.submit(DepthInput(layer_actions.visible_picture(doc), self.model))
        self._job = (job, doc, layer)
        self.message.emit("Estimating depth from the picture…")
        return job

    def _connect(self, worker: GenerationWorker) -> None:
        if self._connected is worker:
            return
        worker.estimated.connect(self._on_estimated)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._connected = worker

    def _on_estimated(self, job: int, depth: np.ndarray) -> None:
        if self._job is None or self._job[0] != job:
            return
        _, doc, layer = self._job
        self._job = None
        if depth.shape != (doc.height, doc.width):
            self.message.emit(f"Depth from Image: the map is {depth.shape[1]}×{depth.shape[0]}, "
                              f"the canvas {doc.width}×{doc.height} (it changed meanwhile); try again.")
            return
        try:
            layer_actions.replace_layer_pixels(doc, layer, layer_actions.depth_pixels(depth), LABEL)
        except Exception as exc:  # noqa: BLE001 - a refused edit (layer gone, locked) is a message
            self.message.emit(f"Cannot place the depth map: {exc}")
            return
        self.message.emit("Depth from Image: done.")
        self.placed.emit(layer)

    def _on_failed(self, job: int, text: str, _kind: FailureKind) -> None:
        if self._job is not None and self._job[0] == job:
            self._job = None
            self.message.emit(f"Depth from Image failed: {text}")

    def _on_cancelled(self, job: int) -> None:
        if self._job is not None and self._job[0] == job:
            self._job = None
            self.message.emit("Depth from Image was cancelled.")
