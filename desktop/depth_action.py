"""Depth from Image: the visible picture → a depth map in the active depth control layer.

An :class:`~sfumato.desktop.estimator_action.EstimatorAction`: the picture goes to the
worker as a :class:`~sfumato.desktop.worker.DepthInput`, the engine runs the depth
estimator (:meth:`~sfumato.inference.engine.Engine.estimate_depth`) on its device, and the
map comes back as ``estimated(job, depth)`` and replaces the layer's pixels as one undo
step ("Depth from Image").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sfumato.canvas.model.document import Document
from sfumato.canvas.model.layers import Layer, PixelLayer, Role
from sfumato.desktop import layer_actions
from sfumato.desktop.estimator_action import EstimatorAction
from sfumato.desktop.worker import DepthInput, GenerationWorker
from sfumato.vocabulary.kinds import ControlKind

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


class DepthFromImage(EstimatorAction):
    """Runs "Depth from Image" through the window's worker (module docstring)."""

    label = LABEL
    working = "Estimating depth from the picture…"

    def problem(self, layer: Layer | None) -> str | None:
        return depth_layer_problem(layer)

    def work(self, doc: Document) -> DepthInput:
        return DepthInput(layer_actions.visible_picture(doc), self.model)

    def result_signal(self, worker: GenerationWorker) -> Any:
        return worker.estimated

    def place(self, doc: Document, layer: PixelLayer, result: np.ndarray) -> str | None:
        layer_actions.replace_layer_pixels(doc, layer, layer_actions.depth_pixels(result), LABEL)
        return "Depth from Image: done."
