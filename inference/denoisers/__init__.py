"""Each family's denoiser call, chosen by the family's name (:mod:`sfumato.inference.denoise`)."""

from __future__ import annotations

from collections.abc import Callable

from sfumato.inference.denoise import DenoiseJob, Denoiser
from sfumato.inference.denoisers.chroma import ChromaDenoiser
from sfumato.inference.denoisers.flux import FluxDenoiser
from sfumato.inference.denoisers.flux2 import Flux2Denoiser
from sfumato.inference.denoisers.qwenimage import QwenImageDenoiser
from sfumato.inference.denoisers.qwenimage21 import QwenImage21Denoiser
from sfumato.inference.denoisers.sd3 import SD3Denoiser
from sfumato.inference.denoisers.unet import UNetDenoiser
from sfumato.inference.denoisers.zimage import ZImageDenoiser
from sfumato.inference.model_cache import LoadedModel
from sfumato.vocabulary.families import (
    CHROMA,
    FLUX,
    FLUX2,
    FLUX_KONTEXT,
    QWENIMAGE,
    QWENIMAGE21,
    QWENIMAGE_EDIT,
    QWENIMAGE_EDIT_PLUS,
    SD3,
    ZIMAGE,
)

__all__ = ["make_denoiser"]

#: family name → its denoiser; families not named here are UNet families
_DENOISERS: dict[str, Callable[[LoadedModel, DenoiseJob], Denoiser]] = {
    FLUX: FluxDenoiser,
    FLUX_KONTEXT: FluxDenoiser,  # the picture to edit: extra image tokens (FluxDenoiser.context)
    CHROMA: ChromaDenoiser,
    SD3: SD3Denoiser,
    FLUX2: Flux2Denoiser,
    QWENIMAGE: QwenImageDenoiser,
    QWENIMAGE_EDIT: QwenImageDenoiser,  # the pictures: extra image tokens (QwenImageDenoiser.context)
    QWENIMAGE_EDIT_PLUS: QwenImageDenoiser,
    QWENIMAGE21: QwenImage21Denoiser,
    ZIMAGE: ZImageDenoiser,
}


def make_denoiser(model: LoadedModel, job: DenoiseJob) -> Denoiser:
    """The denoiser of ``model``'s family for one run of ``job``."""
    factory = _DENOISERS.get(model.family.name)
    if factory is None:
        return UNetDenoiser(model.denoiser, job)
    return factory(model, job)
