"""The inference engine: GenerationRequest in, images and events out.

Importing this package loads no torch: the request types, events and errors are plain
Python, and :class:`Engine` (which needs torch and diffusers) is imported on first
attribute access::

    from sfumato.inference import Engine, GenerationRequest, ModelRef
    engine = Engine()                      # torch is imported here
    result = engine.run(request, on_event=print)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sfumato.inference.cancel import CancelToken
    from sfumato.inference.engine import Engine
    from sfumato.inference.errors import (
        CancelledError,
        CorruptModelError,
        EngineError,
        InvalidRequestError,
        ModelNotFoundError,
        NetworkUnavailableError,
        OutOfMemoryError,
        UnsafeModelError,
        UnsupportedModeError,
    )
    from sfumato.inference.events import (
        Cancelled,
        Event,
        Failed,
        Finished,
        ModelInfo,
        Preview,
        Progress,
        Result,
    )
    from sfumato.inference.options import EngineOptions, PreviewMode
    from sfumato.inference.request import (
        ControlKind,
        ControlSpec,
        FillMode,
        GenerationRequest,
        InitImage,
        InpaintSpec,
        LoraSpec,
        ModelRef,
        RegionSpec,
        RequestError,
        Sampler,
        SchedulerTweaks,
    )

_LAZY = {
    "Engine": "engine",
    "EngineOptions": "options",
    "PreviewMode": "options",
    "CancelToken": "cancel",
    **{name: "errors" for name in (
        "CancelledError", "CorruptModelError", "EngineError", "InvalidRequestError", "ModelNotFoundError",
        "NetworkUnavailableError", "OutOfMemoryError", "UnsafeModelError", "UnsupportedModeError",
    )},
    **{name: "events" for name in (
        "Cancelled", "Event", "Failed", "Finished", "ModelInfo", "Preview", "Progress", "Result",
    )},
    **{name: "request" for name in (
        "ControlKind", "ControlSpec", "FillMode", "GenerationRequest", "InitImage", "InpaintSpec",
        "LoraSpec", "ModelRef", "RegionSpec", "RequestError", "Sampler", "SchedulerTweaks",
    )},
}  # fmt: skip

__all__ = [
    "CancelToken",
    "Cancelled",
    "CancelledError",
    "ControlKind",
    "ControlSpec",
    "CorruptModelError",
    "Engine",
    "EngineError",
    "EngineOptions",
    "Event",
    "Failed",
    "FillMode",
    "Finished",
    "GenerationRequest",
    "InitImage",
    "InpaintSpec",
    "InvalidRequestError",
    "LoraSpec",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelRef",
    "NetworkUnavailableError",
    "OutOfMemoryError",
    "Preview",
    "PreviewMode",
    "Progress",
    "RegionSpec",
    "RequestError",
    "Result",
    "Sampler",
    "SchedulerTweaks",
    "UnsafeModelError",
    "UnsupportedModeError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sfumato.inference' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sfumato.inference.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
