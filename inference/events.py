"""Events the engine emits while it runs a request; nothing else crosses the thread boundary.

Imports no torch. Images are numpy ``uint8`` RGB ``(h, w, 3)``, straight colour.
Rectangles are ``(x, y, width, height)`` in the request's pixel space (the generation
area: ``0 <= x``, ``x + width <= request.width``), top-left origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sfumato.inference.errors import EngineError

__all__ = ["Cancelled", "Event", "Failed", "Finished", "ModelInfo", "Preview", "Progress", "Result"]


@dataclass(frozen=True)
class Progress:
    """``step`` of ``total`` denoising steps are done (1-based: the last one is total/total)."""

    step: int
    total: int


@dataclass(frozen=True, eq=False)
class Preview:
    """A cheap preview of the predicted clean image (x0) after a step.

    ``rgb`` is uint8 ``(h, w, 3)``, usually much smaller than the request: it shows the
    whole request (the engine denoises all of it), so draw it scaled over what the request
    stands for (the planner's area). ``index`` is the batch image it shows (0 for the
    first). ``step`` is the 1-based step it follows.
    """

    rgb: np.ndarray
    step: int = 0
    index: int = 0


@dataclass(frozen=True, eq=False)
class Finished:
    """The run is done. ``images`` are uint8 ``(request.height, request.width, 3)``, one
    per batch item (in seed order); ``metadata`` is JSON-ready (the request summary plus
    the seeds, sizes and timings actually used)."""

    images: tuple[np.ndarray, ...]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The run stopped with an error; the engine is still usable."""

    error: EngineError


@dataclass(frozen=True)
class Cancelled:
    """The run stopped because its cancel flag was set; the engine is still usable."""


Event = Progress | Preview | Finished | Failed | Cancelled


@dataclass(frozen=True, eq=False)
class Result:
    """What :meth:`Engine.run` returns: the same outcome its last event reported.

    ``images`` (empty unless it finished) are as in :class:`Finished`; ``error`` is set
    when it failed, ``cancelled`` when it was cancelled.
    """

    images: tuple[np.ndarray, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    error: EngineError | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is, for the planner and the GUI (sizes in pixels).

    ``native_side`` is the loaded model's own (UNet sample size × VAE factor);
    ``min_side``/``max_long_side`` are the family's limits scaled to it;
    ``inpaint_model`` is true for 9-channel inpainting UNets.
    """

    source: str
    family: str
    label: str
    native_side: int
    min_side: int
    max_long_side: int
    inpaint_model: bool
    #: where the weights live on a GPU and why (:mod:`sfumato.inference.memory`), "" on a CPU
    memory: str = ""
