"""What a request asks the engine to do, as a set of :class:`Mode` values (no torch).

:class:`Mode` itself is the vocabulary's (:mod:`sfumato.vocabulary.kinds`); the request
says which of txt2img/img2img/inpaint it is (``GenerationRequest.mode``).

A request may combine modes freely (img2img + regions + controls, ...); a model family
declares the modes it supports, and the engine refuses a request whose modes its family
lacks with :class:`~sfumato.inference.errors.UnsupportedModeError` before loading anything
else.
"""

from __future__ import annotations

from sfumato.inference.request import GenerationRequest
from sfumato.vocabulary.kinds import Mode

__all__ = ["Mode", "request_modes"]


def request_modes(request: GenerationRequest) -> frozenset[Mode]:
    """The modes ``request`` uses; exactly one of txt2img/img2img/inpaint is always present."""
    modes: set[Mode] = {request.mode}
    if request.regions:
        modes.add(Mode.REGIONS)
    if request.controls:
        modes.add(Mode.CONTROLNET)
    if request.loras:
        modes.add(Mode.LORA)
    return frozenset(modes)
