"""FLUX.1 Kontext [dev]: FLUX.1 trained for instruction edits ("make it night", "remove the
lamp post"). The picture to edit is encoded by FLUX's VAE, packed into 2×2 tokens like the
noise, and appended to the image tokens with position ids ``(1, row, col)`` — the noise's
are ``(0, row, col)`` — as diffusers' ``FluxKontextPipeline`` does; the prediction keeps
the noise tokens' part (:class:`~sfumato.inference.denoisers.flux.FluxDenoiser`). Guidance
is FLUX.1 dev's embedded scale (2.5 is typical for Kontext).

How Kontext is told apart from FLUX.1 dev: its weights have exactly dev's keys and shapes
(BFL's ``flux1-kontext-dev.safetensors`` and the diffusers transformer alike), so nothing
in a header says it. A diffusers folder says it by its pipeline class
(``model_index.json``'s ``_class_name``: ``FluxKontextPipeline`` or
``FluxKontextInpaintPipeline``; :data:`sfumato.vocabulary.families.PIPELINE_FAMILIES`).
A single file says it by its name: a FLUX.1 transformer whose file name holds "kontext"
(:func:`sfumato.vocabulary.families.is_kontext_name`; the part's ``variant`` is then
``"kontext"`` and :attr:`sfumato.inference.model_parts.ModelPart.model_family` this family). Everything else — text encoders, VAE, schedule, LoRAs' key
layout — is FLUX.1's (:mod:`.flux`).

What the engine does with an edit request (``GenerationRequest.edit``): ``init`` is the
picture to edit, at the request's size (the planner chooses it; BFL's preferred Kontext
resolutions, which the pipeline's ``_auto_resize`` snaps to, are the planner's concern);
the result starts from noise (strength 1) or, at a lower strength, from the picture noised;
with an ``inpaint`` mask (the selection) the engine's soft-mask blend keeps the outside,
as ``FluxKontextInpaintPipeline`` does. Without an edit Kontext runs as FLUX.1 dev does
(``FluxKontextPipeline`` without an image).
"""

from __future__ import annotations

from typing import Any

from sfumato.inference.families.flux import FluxFamily
from sfumato.inference.modes import Mode
from sfumato.vocabulary.families import FLUX_KONTEXT

__all__ = ["FluxKontextFamily"]


class FluxKontextFamily(FluxFamily):
    name = FLUX_KONTEXT
    label = "FLUX.1 Kontext"
    edits = True
    # No ControlNet was trained for Kontext and diffusers has no Kontext ControlNet
    # pipeline; regions are not offered for edits yet.
    supported_modes = frozenset({Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT, Mode.EDIT, Mode.LORA})
    pipelines = ("FluxKontextPipeline", "FluxKontextInpaintPipeline")
    #: a folder naming no pipeline class is FLUX.1's: only the class tells Kontext apart
    transformer_class = ""
    #: FLUX.1's Redux references are not offered on Kontext (not tested there yet)
    takes_references = False
    reference_adapter = None

    def is_inpaint_config(self, config: dict[str, Any]) -> bool:
        return False
