"""What a request asks the engine to do, as a set of :class:`Mode` values (no torch).

A request may combine modes freely (img2img + regions + controls, ...); a model family
declares the modes it supports, and the engine refuses a request whose modes its family
lacks with :class:`~sfumato.inference.errors.UnsupportedModeError` before loading anything
else.
"""

from __future__ import annotations

from enum import Enum

from sfumato.inference.request import GenerationRequest

__all__ = ["Mode", "request_modes"]


class Mode(Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    REGIONS = "regions"
    CONTROLNET = "controlnet"
    LORA = "lora"


def request_modes(request: GenerationRequest) -> frozenset[Mode]:
    """The modes ``request`` uses; exactly one of txt2img/img2img/inpaint is always present."""
    modes: set[Mode] = set()
    if request.inpaint is not None:
        modes.add(Mode.INPAINT)
    elif request.init is not None:
        modes.add(Mode.IMG2IMG)
    else:
        modes.add(Mode.TXT2IMG)
    if request.regions:
        modes.add(Mode.REGIONS)
    if request.controls:
        modes.add(Mode.CONTROLNET)
    if request.loras:
        modes.add(Mode.LORA)
    return frozenset(modes)
